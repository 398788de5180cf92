/**
 * Conv2DBackpropInput on wasm: the stride-1 'valid' convolution (XNNPACK) of dy — spread out by the stride and
 * padded by kernel − 1 − forward padding — with the spatially flipped filter, its in/out channels swapped. The
 * stock kernel is a scalar loop, several times slower; it still serves NCHW.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2DBackpropInput, getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { Conv2DBackpropInputAttrs, KernelConfig, KernelFunc } from '@tensorflow/tfjs-core';
import { spreadByStride } from './depthwise_backprop_input.ts';
import { convGeometry, fitAxes, opsKernel } from '../ops_kernel.ts';

let stock: KernelFunc | undefined;

const viaConv = opsKernel(Conv2DBackpropInput, ({ dy, filter }, attrs) => {
  const { strides, pad, dimRoundingMode, inputShape } = attrs as unknown as Conv2DBackpropInputAttrs;
  const g = convGeometry(Conv2DBackpropInput, inputShape, filter!.shape, strides, pad, dimRoundingMode, false);
  const padded = fitAxes(spreadByStride(dy!, g.sh, g.sw), [1, 2], [g.kh - 1 - g.padTop, g.kw - 1 - g.padLeft], [g.H + g.kh - 1, g.W + g.kw - 1]);
  const flipped = tf.transpose(tf.reverse(filter!, [0, 1]), [0, 1, 3, 2]);
  return tf.conv2d(padded as tf.Tensor4D, flipped as tf.Tensor4D, 1, 'valid');
}).kernelFunc;

const conv2dBackpropInput: KernelFunc = (args) => ((args.attrs as unknown as Conv2DBackpropInputAttrs).dataFormat === 'NCHW' ? stock!(args) : viaConv(args));

export const conv2dBackpropInputWasmConfig: KernelConfig = { kernelName: Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2dBackpropInput };

/** Replaces the stock wasm Conv2DBackpropInput once (idempotent), keeping its setup for the NCHW path. */
export function useConvBackpropInputOnWasm(): void {
  const current = getKernel(Conv2DBackpropInput, 'wasm');
  if (!current || current.kernelFunc === conv2dBackpropInput) return;
  stock = current.kernelFunc;
  unregisterKernel(Conv2DBackpropInput, 'wasm');
  registerKernel({ ...conv2dBackpropInputWasmConfig, ...(current.setupFunc ? { setupFunc: current.setupFunc } : {}) });
}
