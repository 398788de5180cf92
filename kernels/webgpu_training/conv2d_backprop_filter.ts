/**
 * Conv2DBackpropFilter on WebGPU as split-K batched matrix products. The stock tfjs-webgpu kernel gives each
 * filter weight one thread that sums over all N·outH·outW positions in sequence: a few thousand threads each
 * running a loop of hundreds of thousands of steps, which leaves the GPU mostly idle (it dominated a training
 * step of 16 patches of 128²). Here dW[i, j] = tapᵢⱼ(x)ᵀ · dy, with the M positions cut into S chunks: one
 * batched matMul [S, m, Cin]ᵀ × [S, m, Cout] → [S, Cin, Cout] (S·Cin·Cout independent sums of m terms, on
 * tfjs's tiled matMul), then a sum over S. Zero rows pad M to a whole number of chunks; they add nothing.
 *
 * NCHW goes to the stock kernel. GATEDVISION_STOCK_CONV_FILTER=1 keeps the stock kernel for everything (for
 * side-by-side timing).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Conv2DBackpropFilter, getKernel, registerKernel, unregisterKernel, type Conv2DBackpropFilterAttrs, type KernelConfig, type KernelFunc } from '@tensorflow/tfjs-core';
import { convGeometry, fitAxes, opsKernel, tap } from '../ops_kernel.ts';

/** Positions summed by one matMul batch entry: long enough to amortise the tile loads, short enough to fill the GPU. */
export const CHUNK_ROWS = 1024;

const splitK = opsKernel(
  Conv2DBackpropFilter,
  ({ x, dy }, attrs) => {
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
    const g = convGeometry(Conv2DBackpropFilter, x!.shape, filterShape, strides, pad, dimRoundingMode, false, 1, dataFormat);
    const [, , cin, cout] = filterShape as [number, number, number, number];
    const M = g.N * g.outH * g.outW;
    const m = Math.min(CHUNK_ROWS, M);
    const S = Math.ceil(M / m);
    const rows = (t: tf.Tensor, c: number) => {
      const t2 = tf.reshape(t, [M, c]);
      return tf.reshape(S * m === M ? t2 : tf.pad(t2, [[0, S * m - M], [0, 0]]), [S, m, c]) as tf.Tensor3D;
    };
    const dy3 = rows(dy!, cout);
    const xPad = fitAxes(x!, [1, 2], [g.padTop, g.padLeft], [(g.outH - 1) * g.sh + g.kh, (g.outW - 1) * g.sw + g.kw]);
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < g.kh; i++) {
      for (let j = 0; j < g.kw; j++) taps.push(tf.sum(tf.matMul(rows(tap(xPad, g, i, j), cin), dy3, true, false), 0));
    }
    return tf.reshape(taps.length === 1 ? taps[0]! : tf.stack(taps), filterShape);
  },
  'webgpu',
);

let stock: KernelFunc | null = null;

export const conv2dBackpropFilterWebgpuConfig: KernelConfig = {
  ...splitK,
  kernelFunc: (args) => {
    const { dataFormat } = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    return dataFormat === 'NCHW' && stock ? stock(args) : splitK.kernelFunc(args);
  },
};

/** Replaces the stock webgpu Conv2DBackpropFilter once the webgpu backend is registered (idempotent), keeping it for NCHW. */
export function useConvBackpropFilterOnWebgpu(): void {
  if (process.env.GATEDVISION_STOCK_CONV_FILTER === '1') return;
  const current = getKernel(Conv2DBackpropFilter, 'webgpu');
  if (!current || current.kernelFunc === conv2dBackpropFilterWebgpuConfig.kernelFunc) return;
  stock = current.kernelFunc;
  unregisterKernel(Conv2DBackpropFilter, 'webgpu');
  registerKernel(conv2dBackpropFilterWebgpuConfig);
}
