/**
 * rmsNormFused(x [..., C], gamma [C], eps) = x · rsqrt(mean(x²) + eps) · gamma over the last axis. One kernel
 * on WebGPU instead of the six of the composite: ViG runs an RMSNorm several times per block, and on the GPU its
 * forward pass is bound by the number of kernels issued, not by their arithmetic.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { RmsNormFused, type RmsNormAttrs } from '../kernel_names.ts';
import { rmsNormReference } from './reference.ts';

export function rmsNormFused(x: tf.Tensor, gamma: tf.Tensor1D, eps: number): tf.Tensor {
  const C = x.shape[x.rank - 1];
  if (x.rank < 1 || gamma.rank !== 1 || gamma.shape[0] !== C) throw new GatedError('shape', `gamma must be [${C}] for x [${x.shape}]; got [${gamma.shape}]`);
  if (!(eps > 0)) throw new GatedError('config', `eps must be positive; got ${eps}`);
  if (forceReference() || x.dtype !== 'float32' || tf.getKernel(RmsNormFused, tf.getBackend()) === undefined) return rmsNormReference(x, gamma, eps);
  const attrs: RmsNormAttrs = { eps };
  return tf.engine().runKernel(RmsNormFused, { x, gamma }, attrs as unknown as NamedAttrMap) as tf.Tensor;
}
