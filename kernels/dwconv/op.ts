/**
 * Fused depthwise convolution for locality injection and MBConv/LePE blocks: depthwise k×k (stride 1,
 * 'same', NHWC) + bias + activation, multiplied by an optional gate of the output's shape.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { DepthwiseConv2dFused, type Activation, type DwAttrs } from '../kernel_names.ts';
import { dwconvReference } from './reference.ts';

export interface DwconvOptions {
  bias?: tf.Tensor1D;
  activation?: Activation;
  gate?: tf.Tensor4D;
}

export function depthwiseConv2dFused(x: tf.Tensor4D, filter: tf.Tensor4D, opts: DwconvOptions = {}): tf.Tensor4D {
  const [, , C] = [x.shape[0], x.shape[1], x.shape[3]];
  if (x.rank !== 4 || filter.rank !== 4 || filter.shape[2] !== C || filter.shape[3] !== 1) {
    throw new GatedError('shape', `x must be [N, H, W, C] and filter [kh, kw, C, 1]; got x ${x.shape}, filter ${filter.shape}`);
  }
  if (filter.shape[0] % 2 === 0 || filter.shape[1] % 2 === 0) throw new GatedError('shape', `'same' padding needs odd kernel sizes; got ${filter.shape[0]}x${filter.shape[1]}`);
  if (opts.bias && (opts.bias.rank !== 1 || opts.bias.shape[0] !== C)) throw new GatedError('shape', `bias must be [${C}]; got ${opts.bias.shape}`);
  if (opts.gate && opts.gate.shape.join() !== x.shape.join()) throw new GatedError('shape', `gate must match x ${x.shape}; got ${opts.gate.shape}`);
  const activation = opts.activation ?? 'linear';
  return tf.tidy(() => {
    const bias = opts.bias ?? (tf.zeros([C!]) as tf.Tensor1D);
    if (forceReference() || tf.getKernel(DepthwiseConv2dFused, tf.getBackend()) === undefined) {
      return dwconvReference(x, filter, bias, opts.gate ?? null, activation);
    }
    const attrs: DwAttrs = { activation, hasGate: Boolean(opts.gate) };
    const gate = opts.gate ?? (tf.zeros([1, 1, 1, 1]) as tf.Tensor4D);
    return tf.engine().runKernel(DepthwiseConv2dFused, { x, filter, bias, gate }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
  });
}
