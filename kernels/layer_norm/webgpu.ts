/** WebGPU kernel for LayerNormFused. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { LayerNormFused, type LayerNormAttrs } from '../kernel_names.ts';
import { rowUniforms } from '../row_program.ts';
import { layerNormProgram } from './webgpu_program.ts';

const layerNormWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, gamma, beta } = inputs as Record<string, TensorInfo>;
  const { eps } = attrs as unknown as LayerNormAttrs;
  return (backend as WebGPUBackend).runWebGPUProgram(layerNormProgram(x!.shape), [x!, gamma!, beta!], 'float32', rowUniforms(x!.shape, eps));
};

export const layerNormWebgpuConfig: KernelConfig = { kernelName: LayerNormFused, backendName: 'webgpu', kernelFunc: layerNormWebgpu };
