/**
 * Conv2DBackpropFilter on wasm: dW[i, j] = tapᵢⱼ(x)ᵀ · dy, one GEMM per filter tap over all M = N·outH·outW
 * positions. x is put channels-first once, so each tap is a strided slice that is already the row-major
 * [Cin, M] left operand; dy [M, Cout] is the right operand of every tap, so XNNPACK (which caches its packed
 * right operand per tensor) packs it once. No operand is transposed: the wasm matMul sends a transposed
 * operand to a scalar loop.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2DBackpropFilter, type Conv2DBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { convGeometry, fitAxes, opsKernel, tap } from '../ops_kernel.ts';

export const conv2dBackpropFilterWasmConfig = opsKernel(Conv2DBackpropFilter, ({ x, dy }, attrs) => {
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
  const g = convGeometry(Conv2DBackpropFilter, x!.shape, filterShape, strides, pad, dimRoundingMode, false, 1, dataFormat);
  const [, , cin, cout] = filterShape as [number, number, number, number];
  const M = g.N * g.outH * g.outW;
  const dy2 = tf.reshape(dy!, [M, cout]) as tf.Tensor2D;
  const xPad = fitAxes(x!, [1, 2], [g.padTop, g.padLeft], [(g.outH - 1) * g.sh + g.kh, (g.outW - 1) * g.sw + g.kw]);
  const xT = tf.transpose(xPad, [3, 0, 1, 2]); // [Cin, N, Hp, Wp]
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) taps.push(tf.matMul(tf.reshape(tap(xT, g, i, j, [2, 3]), [cin, M]) as tf.Tensor2D, dy2));
  }
  // [kh·kw, Cin, Cout] is the filter layout already
  return tf.reshape(taps.length === 1 ? taps[0]! : tf.stack(taps), filterShape);
});
