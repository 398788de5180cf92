/** WebGPU kernel for GatedLinearAttention (one scan, added onto `acc`). */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { GatedLinearAttention, type GlaAttrs } from '../kernel_names.ts';
import { GlaScanProgram } from './webgpu_program.ts';

/** The private state array lives in registers; beyond this it would spill. */
const MAX_DK = 128;

const glaWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { q, k, v, logDecay, acc } = inputs as Record<string, TensorInfo>;
  const { reverse, scale } = attrs as unknown as GlaAttrs;
  const [B, H, T, Dk] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  if (Dk > MAX_DK) throw new GatedError('kernel', `d_k ${Dk} exceeds the kernel's ${MAX_DK}`);
  const program = new GlaScanProgram([B, H, T, Dv], Dk);
  const uniforms = [
    { type: 'int32', data: [T] },
    { type: 'int32', data: [B * H] },
    { type: 'int32', data: [Dv] },
    { type: 'int32', data: [reverse ? 1 : 0] },
    { type: 'float32', data: [scale] },
  ];
  return (backend as WebGPUBackend).runWebGPUProgram(program, [q!, k!, v!, logDecay!, acc!], 'float32', uniforms);
};

export const glaWebgpuConfig: KernelConfig = { kernelName: GatedLinearAttention, backendName: 'webgpu', kernelFunc: glaWebgpu };
