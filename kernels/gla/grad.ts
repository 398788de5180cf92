/**
 * Gradient of GatedLinearAttention: on WebGPU, where the sizes fit, the backward kernel (backward.ts, one direction);
 * elsewhere the vector-Jacobian product of the loop-free chunked form
 * (vectorized.ts: batched over chunks, log-depth state scan), which equals the reference's maths, so any
 * backend that runs the fast forward kernel trains with the reference's gradients in O(log T) batched ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedLinearAttention, type GlaAttrs } from '../kernel_names.ts';
import { BiGatedLinearAttention, GatedLinearAttentionGrad, type BiGlaAttrs } from './names.ts';
import { glaBiGradKernel, glaBiGradKernelChunk, glaGradKernel } from './backward.ts';
import { glaVectorized } from './vectorized.ts';
import { vjp } from '../vjp.ts';

export const glaGradConfig: GradConfig = {
  kernelName: GatedLinearAttention,
  inputsToSave: ['q', 'k', 'v', 'logDecay', 'acc'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [q, k, v, g, acc] = saved as tf.Tensor4D[];
    const { reverse, scale } = attrs as unknown as GlaAttrs;
    if (glaBiGradKernelChunk(q!.shape[3], v!.shape[3], GatedLinearAttentionGrad) > 0) {
      const [dq, dk, dv, dg] = glaGradKernel(q!, k!, v!, g!, dy as tf.Tensor4D, reverse, scale);
      return { q: () => dq!, k: () => dk!, v: () => dv!, logDecay: () => dg!, acc: () => tf.clone(dy as tf.Tensor) };
    }
    const [dq, dk, dv, dg, dacc] = vjp(
      (a, b, c, d, e) => glaVectorized(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, d as tf.Tensor4D, e as tf.Tensor4D, reverse, scale),
      [q!, k!, v!, g!, acc!],
      dy as tf.Tensor,
    );
    return { q: () => dq!, k: () => dk!, v: () => dv!, logDecay: () => dg!, acc: () => dacc! };
  },
};

/**
 * Gradient of BiGatedLinearAttention: on WebGPU, where the sizes fit, the backward kernel (backward.ts); elsewhere
 * the VJP of the two loop-free scans, the backward one added onto the forward one.
 */
export const glaBiGradConfig: GradConfig = {
  kernelName: BiGatedLinearAttention,
  inputsToSave: ['q', 'k', 'v', 'logDecayFwd', 'logDecayBwd'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [q, k, v, gf, gb] = saved as tf.Tensor4D[];
    const { scale } = attrs as unknown as BiGlaAttrs;
    const grads = glaBiGradKernelChunk(q!.shape[3], v!.shape[3]) > 0 ? glaBiGradKernel : glaBiGradVjp;
    const [dq, dk, dv, dgf, dgb] = grads(q!, k!, v!, gf!, gb!, dy as tf.Tensor4D, scale);
    return { q: () => dq!, k: () => dk!, v: () => dv!, logDecayFwd: () => dgf!, logDecayBwd: () => dgb! };
  },
};

/** [dq, dk, dv, dLogDecayFwd, dLogDecayBwd] as the VJP of the two loop-free scans (any backend; benchmarks time it). */
export function glaBiGradVjp(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecayFwd: tf.Tensor4D, logDecayBwd: tf.Tensor4D, dy: tf.Tensor4D, scale: number): tf.Tensor4D[] {
  const both = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, f: tf.Tensor, r: tf.Tensor) => {
    const [x, y, z] = [a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D];
    const zero = tf.fill([x.shape[0], x.shape[1], x.shape[2], z.shape[3]], 0) as tf.Tensor4D;
    return glaVectorized(x, y, z, r as tf.Tensor4D, glaVectorized(x, y, z, f as tf.Tensor4D, zero, false, scale), true, scale);
  };
  return vjp(both, [q, k, v, logDecayFwd, logDecayBwd], dy) as tf.Tensor4D[];
}
