/**
 * geluFused(x, approximate): one elementwise kernel on WebGPU instead of the five to eight of the composite; the
 * restoration and FPN heads apply it to full-resolution maps in every layer.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { forceReference } from '../flags.ts';
import { GeluFused, type GeluAttrs } from '../kernel_names.ts';
import { geluReference } from './reference.ts';

export function geluFused(x: tf.Tensor, approximate: 'erf' | 'tanh' = 'erf'): tf.Tensor {
  if (forceReference() || x.dtype !== 'float32' || tf.getKernel(GeluFused, tf.getBackend()) === undefined) return geluReference(x, approximate);
  const attrs: GeluAttrs = { approximate };
  return tf.engine().runKernel(GeluFused, { x }, attrs as unknown as NamedAttrMap) as tf.Tensor;
}
