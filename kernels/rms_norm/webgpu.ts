/** WebGPU kernel for RmsNormFused. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { RmsNormFused, type RmsNormAttrs } from '../kernel_names.ts';
import { RmsNormProgram } from './webgpu_program.ts';

const rmsNormWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, gamma } = inputs as Record<string, TensorInfo>;
  const { eps } = attrs as unknown as RmsNormAttrs;
  const shape = x!.shape;
  const C = shape[shape.length - 1]!;
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const program = new RmsNormProgram(shape);
  const uniforms = [
    { type: 'int32', data: [C] },
    { type: 'int32', data: [rows] },
    { type: 'float32', data: [eps] },
  ];
  return (backend as WebGPUBackend).runWebGPUProgram(program, [x!, gamma!], 'float32', uniforms);
};

export const rmsNormWebgpuConfig: KernelConfig = { kernelName: RmsNormFused, backendName: 'webgpu', kernelFunc: rmsNormWebgpu };
