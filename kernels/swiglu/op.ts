/**
 * swigluFused(u [..., 2I]) = SiLU(u[..., :I]) ⊙ u[..., I:], [..., I]: the gated MLP's middle (ViG's SwiGLU,
 * ViG-H's gMLP). One kernel on WebGPU instead of a split and three elementwise kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { SwigluFused } from '../kernel_names.ts';
import { swigluReference } from './reference.ts';

export function swigluFused(u: tf.Tensor): tf.Tensor {
  const last = u.shape[u.rank - 1];
  if (u.rank < 1 || last! % 2 !== 0) throw new GatedError('shape', `the last axis of u holds [gate | value] and must be even; got [${u.shape}]`);
  if (forceReference() || u.dtype !== 'float32' || tf.getKernel(SwigluFused, tf.getBackend()) === undefined) return swigluReference(u);
  return tf.engine().runKernel(SwigluFused, { u }) as tf.Tensor;
}
