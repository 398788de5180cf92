/**
 * DepthwiseConv2dNativeBackpropInput on wasm: dx is the stride-1 'valid' depthwise convolution (XNNPACK) of
 * dy — spread out by the stride (zeros between rows and columns) and padded by kernel − 1 − forward padding —
 * with the spatially flipped filter. A channel multiplier m > 1 runs as C·m channels, then sums each group of m.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DepthwiseConv2dNativeBackpropInput, type DepthwiseConv2dNativeBackpropInputAttrs } from '@tensorflow/tfjs-core';
import { convGeometry, fitAxes, opsKernel } from '../ops_kernel.ts';

export const depthwiseBackpropInputWasmConfig = opsKernel(DepthwiseConv2dNativeBackpropInput, ({ dy, filter }, attrs) => {
  const { strides, pad, dilations, dimRoundingMode, inputShape } = attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const g = convGeometry(DepthwiseConv2dNativeBackpropInput, inputShape, filter!.shape, strides, pad, dimRoundingMode, true, dilations);
  const [, , C, m] = filter!.shape as [number, number, number, number];
  const spread = spreadByStride(dy!, g.sh, g.sw);
  const padded = fitAxes(spread, [1, 2], [g.kh - 1 - g.padTop, g.kw - 1 - g.padLeft], [g.H + g.kh - 1, g.W + g.kw - 1]);
  const flipped = tf.reshape(tf.reverse(filter!, [0, 1]), [g.kh, g.kw, C * m, 1]);
  const dx = tf.depthwiseConv2d(padded as tf.Tensor4D, flipped as tf.Tensor4D, 1, 'valid');
  return m === 1 ? dx : tf.sum(tf.reshape(dx, [g.N, g.H, g.W, C, m]), -1);
});

/** dy [N, oh, ow, C] → [N, oh·sh, ow·sw, C] with dy[y, x] at (y·sh, x·sw) and zeros elsewhere. */
export function spreadByStride(dy: tf.Tensor, sh: number, sw: number): tf.Tensor {
  if (sh === 1 && sw === 1) return dy;
  const [N, oh, ow, C] = dy.shape as [number, number, number, number];
  const six = tf.pad(tf.reshape(dy, [N, oh, 1, ow, 1, C]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.reshape(six, [N, oh * sh, ow * sw, C]);
}
