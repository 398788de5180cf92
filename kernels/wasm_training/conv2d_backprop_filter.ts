/**
 * Conv2DBackpropFilter on wasm: dW[i, j] = tapᵢⱼ(x)ᵀ · dy, one GEMM per filter tap over all N·outH·outW
 * positions. The wasm backend sends a matMul to XNNPACK only without transposes (a transposed operand takes
 * its scalar loop), so dy is transposed once and each tap computes dyᵀ [Cout, M] · tap [M, Cin].
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2DBackpropFilter, type Conv2DBackpropFilterAttrs } from '@tensorflow/tfjs-core';
import { convGeometry, fitAxes, opsKernel, tap } from './tf_kernel.ts';

export const conv2dBackpropFilterWasmConfig = opsKernel(Conv2DBackpropFilter, ({ x, dy }, attrs) => {
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
  const g = convGeometry(Conv2DBackpropFilter, x!.shape, filterShape, strides, pad, dimRoundingMode, false, 1, dataFormat);
  const [, , cin, cout] = filterShape as [number, number, number, number];
  const M = g.N * g.outH * g.outW;
  const dyT = tf.transpose(tf.reshape(dy!, [M, cout]));
  const xPad = fitAxes(x!, [1, 2], [g.padTop, g.padLeft], [(g.outH - 1) * g.sh + g.kh, (g.outW - 1) * g.sw + g.kw]);
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < g.kh; i++) {
    for (let j = 0; j < g.kw; j++) taps.push(tf.matMul(dyT as tf.Tensor2D, tf.reshape(tap(xPad, g, i, j), [M, cin]) as tf.Tensor2D));
  }
  // [kh·kw, Cout, Cin] → [kh, kw, Cin, Cout]
  const dW = taps.length === 1 ? tf.expandDims(taps[0]!, 0) : tf.stack(taps);
  return tf.reshape(tf.transpose(dW, [0, 2, 1]), filterShape);
});
