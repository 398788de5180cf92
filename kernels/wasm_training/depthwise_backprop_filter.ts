/**
 * DepthwiseConv2dNativeBackpropFilter on wasm: dW[i, j, c, q] = Σ tapᵢⱼ(x)[c] · dy[c·m + q] over all
 * N·outH·outW positions. x and dy are put channels-first once, so each tap is one strided slice, one
 * elementwise product and a sum over the innermost axis (the fast reduction; the wasm Sum transposes first
 * for any other axis).
 */
import * as tf from '@tensorflow/tfjs-core';
import { DepthwiseConv2dNativeBackpropFilter, type DepthwiseConv2dNativeBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { convGeometry, fitAxes, opsKernel, tap } from '../ops_kernel.ts';

export const depthwiseBackpropFilterWasmConfig = opsKernel(DepthwiseConv2dNativeBackpropFilter, ({ x, dy }, attrs) => {
  const { strides, pad, dilations, dimRoundingMode, filterShape } = attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const g = convGeometry(DepthwiseConv2dNativeBackpropFilter, x!.shape, filterShape, strides, pad, dimRoundingMode, true, dilations);
  const [, , C, m] = filterShape as [number, number, number, number];
  const M = g.N * g.outH * g.outW;
  const xPad = fitAxes(x!, [1, 2], [g.padTop, g.padLeft], [(g.outH - 1) * g.sh + g.kh, (g.outW - 1) * g.sw + g.kw]);
  const xT = tf.transpose(xPad, [3, 0, 1, 2]); // [C, N, Hp, Wp]
  const dyT = tf.reshape(tf.transpose(dy!, [3, 0, 1, 2]), m === 1 ? [C, M] : [C, m, M]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) {
      const t = tf.reshape(tap(xT, g, i, j, [2, 3]), m === 1 ? [C, M] : [C, 1, M]);
      taps.push(tf.sum(tf.mul(t, dyT), -1));
    }
  }
  return tf.reshape(taps.length === 1 ? taps[0]! : tf.stack(taps), filterShape);
});
