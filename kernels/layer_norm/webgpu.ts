/** WebGPU kernel for LayerNormFused. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { LayerNormFused, type LayerNormAttrs } from '../kernel_names.ts';
import { LayerNormProgram } from './webgpu_program.ts';

const layerNormWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, gamma, beta } = inputs as Record<string, TensorInfo>;
  const { eps } = attrs as unknown as LayerNormAttrs;
  const shape = x!.shape;
  const C = shape[shape.length - 1]!;
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const uniforms = [
    { type: 'int32', data: [C] },
    { type: 'int32', data: [rows] },
    { type: 'float32', data: [eps] },
  ];
  return (backend as WebGPUBackend).runWebGPUProgram(new LayerNormProgram(shape), [x!, gamma!, beta!], 'float32', uniforms);
};

export const layerNormWebgpuConfig: KernelConfig = { kernelName: LayerNormFused, backendName: 'webgpu', kernelFunc: layerNormWebgpu };
