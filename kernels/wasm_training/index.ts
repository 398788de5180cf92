/** What training on wasm needs beyond tfjs-backend-wasm 4.22: its missing gradient kernels, and a sharing Identity. */
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { conv2dBackpropFilterWasmConfig } from './conv2d_backprop_filter.ts';
import { depthwiseBackpropFilterWasmConfig } from './depthwise_backprop_filter.ts';
import { depthwiseBackpropInputWasmConfig } from './depthwise_backprop_input.ts';

export { useSharedIdentityOnWasm } from './identity_shared.ts';

export const WASM_TRAINING_KERNELS: KernelConfig[] = [conv2dBackpropFilterWasmConfig, depthwiseBackpropFilterWasmConfig, depthwiseBackpropInputWasmConfig];
