/**
 * Fused RMSNorm: the WebGPU kernel (SwiftShader) against the tfjs-ops definition, forward and gradients, for
 * rows shorter and longer than the workgroup, ViG's channel counts, and more rows than one dispatch dimension holds.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { setForceReference } from '../../kernels/flags.ts';
import { RmsNormFused } from '../../kernels/kernel_names.ts';
import { rmsNormFused } from '../../kernels/rms_norm/op.ts';
import { rmsNormReference } from '../../kernels/rms_norm/reference.ts';
import { maxAbsDiff } from '../_helpers/close.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});

describe('rmsNormFused on WebGPU vs the definition', () => {
  it.each([
    ['C 5 (< workgroup)', [2, 7, 5]],
    ['C 130 (> workgroup, not a multiple)', [3, 130]],
    ['C 192 (ViG-T)', [1, 4, 4, 192]],
    ['70000 rows (two dispatch dimensions)', [70000, 3]],
  ] as [string, number[]][])('%s', async (_n, shape) => {
    const C = shape[shape.length - 1]!;
    const x = tf.randomNormal(shape, 0.3, 2, 'float32', 1);
    const g = tf.randomNormal([C], 1, 0.3, 'float32', 2) as tf.Tensor1D;
    const prof = await tf.profile(() => rmsNormFused(x, g, 1e-6));
    expect(prof.kernelNames).toEqual([RmsNormFused]);
    const fast = rmsNormFused(x, g, 1e-6);
    const ref = rmsNormReference(x, g, 1e-6);
    expect(fast.shape).toEqual(shape);
    expect(await maxAbsDiff(fast, ref)).toBeLessThan(1e-5 * 4);
    tf.dispose([x, g, fast, ref, prof.result as tf.Tensor]);
  });

  it('eps matters where the row is near zero', async () => {
    const x = tf.tensor2d([[1e-4, -2e-4, 3e-4], [1, 2, 3]]);
    const g = tf.ones([3]) as tf.Tensor1D;
    const a = rmsNormFused(x, g, 1e-6);
    const b = rmsNormReference(x, g, 1e-6);
    const c = rmsNormReference(x, g, 1e-3);
    expect(await maxAbsDiff(a, b)).toBeLessThan(1e-5);
    expect(await maxAbsDiff(a, c)).toBeGreaterThan(0.1);
  });

  it('gradients with respect to x and gamma equal those of the definition', async () => {
    const x = tf.randomNormal([3, 5, 70], 0, 1, 'float32', 3);
    const g = tf.randomNormal([70], 1, 0.3, 'float32', 4) as tf.Tensor1D;
    const w = tf.randomNormal([3, 5, 70], 0, 1, 'float32', 5);
    const loss = (f: (a: tf.Tensor, b: tf.Tensor1D) => tf.Tensor) => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b as tf.Tensor1D), w)));
    const [dxF, dgF] = loss((a, b) => rmsNormFused(a, b, 1e-6))([x, g]);
    setForceReference(true);
    let ref: tf.Tensor[];
    try {
      ref = loss((a, b) => rmsNormFused(a, b, 1e-6))([x, g]);
    } finally {
      setForceReference(false);
    }
    expect(await maxAbsDiff(dxF!, ref[0]!)).toBeLessThan(1e-4);
    expect(await maxAbsDiff(dgF!, ref[1]!)).toBeLessThan(1e-4);
  });

  it('names a gamma of the wrong size', () => {
    expect(() => rmsNormFused(tf.zeros([2, 4]), tf.ones([3]) as tf.Tensor1D, 1e-6)).toThrow(/gamma must be \[4\]/);
  });
});
