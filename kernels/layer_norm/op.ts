/**
 * layerNormFused(x [..., C], gamma [C] | null, beta [C] | null, eps) over the last axis. One kernel on WebGPU
 * instead of the ten of the composite (moments, centring, rsqrt, scale, shift): the hierarchical ViG, HER-Seg and
 * DeiT normalise several times per block, and on the GPU their forward passes are bound by kernels issued.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { LayerNormFused, type LayerNormAttrs } from '../kernel_names.ts';
import { layerNormReference } from './reference.ts';

export function layerNormFused(x: tf.Tensor, gamma: tf.Tensor1D | null, beta: tf.Tensor1D | null, eps: number): tf.Tensor {
  const C = x.shape[x.rank - 1];
  for (const [n, p] of [['gamma', gamma], ['beta', beta]] as const) {
    if (p && (p.rank !== 1 || p.shape[0] !== C)) throw new GatedError('shape', `${n} must be [${C}] for x [${x.shape}]; got [${p.shape}]`);
  }
  if (!(eps > 0)) throw new GatedError('config', `eps must be positive; got ${eps}`);
  if (forceReference() || x.dtype !== 'float32' || tf.getKernel(LayerNormFused, tf.getBackend()) === undefined) return layerNormReference(x, gamma, beta, eps);
  const attrs: LayerNormAttrs = { eps };
  return tf.tidy(() => {
    const g = gamma ?? (tf.ones([C!]) as tf.Tensor1D);
    const b = beta ?? (tf.zeros([C!]) as tf.Tensor1D);
    return tf.engine().runKernel(LayerNormFused, { x, gamma: g, beta: b }, attrs as unknown as NamedAttrMap) as tf.Tensor;
  });
}
