/**
 * Identity (tf.clone) on wasm sharing the input's buffer, as the cpu and webgpu backends do, instead of the
 * stock kernel's copy. Beyond saving the copy, this keeps backward passes from reading freed memory: tfjs's
 * tape saves an op's inputs as clones, and a customGrad op whose gradient closes over its input (tf.logSigmoid
 * does) relies on such a clone holding that input's buffer after an enclosing tidy has released the input.
 * Tensors are immutable (Variable.assign swaps buffers), so sharing is safe.
 */
import { getKernel, Identity, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import type { KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

let stock: KernelFunc | undefined;

const identityShared: KernelFunc = (args) => {
  const x = args.inputs.x as TensorInfo;
  if (x.dtype === 'string') return stock!(args); // string tensors live outside the wasm heap
  (args.backend as KernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

export const identitySharedWasmConfig: KernelConfig = { kernelName: Identity, backendName: 'wasm', kernelFunc: identityShared };

/** Replaces the stock wasm Identity once (idempotent); the stock one still serves string tensors. */
export function useSharedIdentityOnWasm(): void {
  const current = getKernel(Identity, 'wasm');
  if (!current || current.kernelFunc === identityShared) return;
  stock = current.kernelFunc;
  unregisterKernel(Identity, 'wasm');
  registerKernel(identitySharedWasmConfig);
}
