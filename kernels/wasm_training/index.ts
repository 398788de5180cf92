/**
 * What training on wasm needs beyond tfjs-backend-wasm 4.22: its missing gradient kernels, and two stock
 * kernels replaced (a buffer-sharing Identity, a BatchMatMul that keeps transposed products on XNNPACK, a
 * Conv2DBackpropInput on XNNPACK's convolution).
 */
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { useTransposingMatMulOnWasm } from './batch_matmul.ts';
import { conv2dBackpropFilterWasmConfig } from './conv2d_backprop_filter.ts';
import { useConvBackpropInputOnWasm } from './conv2d_backprop_input.ts';
import { depthwiseBackpropFilterWasmConfig } from './depthwise_backprop_filter.ts';
import { depthwiseBackpropInputWasmConfig } from './depthwise_backprop_input.ts';
import { useSharedIdentityOnWasm } from './identity_shared.ts';

export const WASM_TRAINING_KERNELS: KernelConfig[] = [conv2dBackpropFilterWasmConfig, depthwiseBackpropFilterWasmConfig, depthwiseBackpropInputWasmConfig];

/** Replaces the stock wasm kernels named above, once the wasm backend is loaded (idempotent). */
export function useWasmKernelReplacements(): void {
  useSharedIdentityOnWasm();
  useTransposingMatMulOnWasm();
  useConvBackpropInputOnWasm();
}
