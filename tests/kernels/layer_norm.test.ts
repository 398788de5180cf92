/**
 * Fused LayerNorm: the WebGPU kernel (SwiftShader) against the tfjs-ops definition, forward and gradients, for
 * rows shorter and longer than the workgroup, a large common offset and no affine parameters (the row dispatch
 * past 65535 rows is shared with RMSNorm and tested there).
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { setForceReference } from '../../kernels/flags.ts';
import { LayerNormFused } from '../../kernels/kernel_names.ts';
import { layerNormFused } from '../../kernels/layer_norm/op.ts';
import { layerNormReference } from '../../kernels/layer_norm/reference.ts';
import { maxAbsDiff } from '../_helpers/close.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});

describe('layerNormFused on WebGPU vs the definition', () => {
  it.each([
    ['C 5 (< workgroup)', [2, 7, 5], 0],
    ['C 130 (> workgroup, not a multiple)', [3, 130], 0],
    ['C 96 with a common offset of 1000', [2, 8, 8, 96], 1000],
  ] as [string, number[], number][])('%s', async (_n, shape, offset) => {
    const C = shape[shape.length - 1]!;
    const x = tf.add(tf.randomNormal(shape, 0.3, 2, 'float32', 1), offset);
    const g = tf.randomNormal([C], 1, 0.3, 'float32', 2) as tf.Tensor1D;
    const b = tf.randomNormal([C], 0, 0.3, 'float32', 3) as tf.Tensor1D;
    const prof = await tf.profile(() => layerNormFused(x, g, b, 1e-5));
    expect(prof.kernelNames).toEqual([LayerNormFused]);
    const fast = layerNormFused(x, g, b, 1e-5);
    const ref = layerNormReference(x, g, b, 1e-5);
    expect(fast.shape).toEqual(shape);
    expect(await maxAbsDiff(fast, ref)).toBeLessThan(offset ? 2e-3 : 2e-5);
    tf.dispose([x, g, b, fast, ref, prof.result as tf.Tensor]);
  });

  it('without gamma and beta: zero mean and unit variance per row', async () => {
    const x = tf.randomNormal([4, 50], 3, 5, 'float32', 4);
    const y = layerNormFused(x, null, null, 1e-6);
    const { mean, variance } = tf.moments(y, -1);
    expect(await maxAbsDiff(mean, tf.zeros([4]))).toBeLessThan(1e-5);
    expect(await maxAbsDiff(variance, tf.ones([4]))).toBeLessThan(1e-4);
    expect(await maxAbsDiff(y, layerNormReference(x, null, null, 1e-6))).toBeLessThan(2e-5);
  });

  it('gradients with respect to x, gamma and beta equal those of the definition', async () => {
    const x = tf.randomNormal([3, 5, 70], 0, 1, 'float32', 5);
    const g = tf.randomNormal([70], 1, 0.3, 'float32', 6) as tf.Tensor1D;
    const b = tf.randomNormal([70], 0, 0.3, 'float32', 7) as tf.Tensor1D;
    const w = tf.randomNormal([3, 5, 70], 0, 1, 'float32', 8);
    const grads = () => tf.grads((a: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(layerNormFused(a, gg as tf.Tensor1D, bb as tf.Tensor1D, 1e-5), w)))([x, g, b]);
    const fast = grads();
    setForceReference(true);
    let ref: tf.Tensor[];
    try {
      ref = grads();
    } finally {
      setForceReference(false);
    }
    for (let i = 0; i < 3; i++) expect(await maxAbsDiff(fast[i]!, ref[i]!)).toBeLessThan(1e-4);
  });

  it('names a beta of the wrong size', () => {
    expect(() => layerNormFused(tf.zeros([2, 4]), null, tf.zeros([3]) as tf.Tensor1D, 1e-6)).toThrow(/beta must be \[4\]/);
  });
});
