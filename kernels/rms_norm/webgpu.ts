/** WebGPU kernel for RmsNormFused. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { RmsNormFused, type RmsNormAttrs } from '../kernel_names.ts';
import { rowUniforms } from '../row_program.ts';
import { rmsNormProgram } from './webgpu_program.ts';

const rmsNormWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, gamma } = inputs as Record<string, TensorInfo>;
  const { eps } = attrs as unknown as RmsNormAttrs;
  return (backend as WebGPUBackend).runWebGPUProgram(rmsNormProgram(x!.shape), [x!, gamma!], 'float32', rowUniforms(x!.shape, eps));
};

export const rmsNormWebgpuConfig: KernelConfig = { kernelName: RmsNormFused, backendName: 'webgpu', kernelFunc: rmsNormWebgpu };
