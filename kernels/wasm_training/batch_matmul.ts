/**
 * BatchMatMul on wasm with transposes: the stock kernel sends XNNPACK only untransposed single-batch products
 * and runs everything else in a scalar loop — which is every MatMul gradient (dA = dy·Bᵀ, dB = Aᵀ·dy). For a
 * single batch the transposed operand is transposed explicitly (one copy) and the product runs on XNNPACK.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BatchMatMul, getKernel, registerKernel, unregisterKernel, util } from '@tensorflow/tfjs-core';
import type { BatchMatMulAttrs, KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { asTensor } from '../ops_kernel.ts';

let stock: KernelFunc | undefined;

const swapLast = (t: tf.Tensor) => tf.transpose(t, [...t.shape.keys()].map((k, _, all) => (k < all.length - 2 ? k : 2 * all.length - 3 - k)));

const batchMatMul: KernelFunc = (args) => {
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
  const single = util.sizeFromShape(a.shape.slice(0, -2)) === 1 && util.sizeFromShape(b.shape.slice(0, -2)) === 1;
  if (!single || (!transposeA && !transposeB) || a.dtype !== 'float32' || b.dtype !== 'float32') return stock!(args);
  return tf.tidy(() => {
    const [ta, tb] = [asTensor(a, args.backend as KernelBackend), asTensor(b, args.backend as KernelBackend)];
    return tf.matMul(transposeA ? swapLast(ta) : ta, transposeB ? swapLast(tb) : tb);
  });
};

export const batchMatMulWasmConfig: KernelConfig = { kernelName: BatchMatMul, backendName: 'wasm', kernelFunc: batchMatMul };

/** Replaces the stock wasm BatchMatMul once (idempotent); it still runs every untransposed or batched product. */
export function useTransposingMatMulOnWasm(): void {
  const current = getKernel(BatchMatMul, 'wasm');
  if (!current || current.kernelFunc === batchMatMul) return;
  stock = current.kernelFunc;
  unregisterKernel(BatchMatMul, 'wasm');
  registerKernel({ ...batchMatMulWasmConfig, ...(current.setupFunc ? { setupFunc: current.setupFunc } : {}) });
}
