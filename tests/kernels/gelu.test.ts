/** Fused GELU: the WebGPU kernel (SwiftShader) against the tfjs-ops definition, both forms, forward and gradient. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { setForceReference } from '../../kernels/flags.ts';
import { geluFused } from '../../kernels/gelu/op.ts';
import { GeluFused } from '../../kernels/kernel_names.ts';
import { geluReference } from '../../kernels/gelu/reference.ts';
import { maxAbsDiff } from '../_helpers/close.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});

describe('geluFused on WebGPU vs the definition', () => {
  it.each(['erf', 'tanh'] as const)('%s: one kernel, equal values from -12 to 12, odd size', async (approximate) => {
    const x = tf.concat([tf.linspace(-12, 12, 2001), tf.randomNormal([3 * 5 * 7], 0, 3, 'float32', 1)]);
    const prof = await tf.profile(() => geluFused(x, approximate));
    expect(prof.kernelNames).toEqual([GeluFused]);
    const fast = geluFused(x, approximate);
    expect(await maxAbsDiff(fast, geluReference(x, approximate))).toBeLessThan(2e-6 * 12);
    tf.dispose([x, fast, prof.result as tf.Tensor]);
  });

  it('the two forms differ (the approximation is not the exact GELU)', async () => {
    const x = tf.linspace(-3, 3, 61);
    expect(await maxAbsDiff(geluFused(x, 'erf'), geluFused(x, 'tanh'))).toBeGreaterThan(1e-4);
  });

  it.each(['erf', 'tanh'] as const)('%s: gradient equals the definition', async (approximate) => {
    const x = tf.randomNormal([4, 9, 13], 0, 2, 'float32', 2);
    const w = tf.randomNormal([4, 9, 13], 0, 1, 'float32', 3);
    const g = () => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(geluFused(a, approximate), w)))(x);
    const fast = g();
    setForceReference(true);
    let ref: tf.Tensor;
    try {
      ref = g();
    } finally {
      setForceReference(false);
    }
    expect(await maxAbsDiff(fast, ref)).toBeLessThan(1e-5);
  });
});
