/** WebGPU kernel for MultiAxisPartition (both directions). */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { MultiAxisPartition, type MultiAxisAttrs } from '../kernel_names.ts';
import { MultiAxisProgram } from './webgpu_program.ts';

const multiAxisWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x } = inputs as Record<string, TensorInfo>;
  const { gh, gw, fh, fw, inverse } = attrs as unknown as MultiAxisAttrs;
  const [n, , , c] = x!.shape as [number, number, number, number];
  const outShape = inverse ? [n, gh * fh, gw * fw, c] : [n, gh * gw, fh * fw, c];
  const program = new MultiAxisProgram(outShape, inverse);
  const uniforms = [gh, gw, fh, fw, c].map((v) => ({ type: 'int32', data: [v] }));
  return (backend as WebGPUBackend).runWebGPUProgram(program, [x!], 'float32', uniforms);
};

export const multiAxisWebgpuConfig: KernelConfig = { kernelName: MultiAxisPartition, backendName: 'webgpu', kernelFunc: multiAxisWebgpu };
