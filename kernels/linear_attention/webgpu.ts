/** WebGPU kernel for LinearAttention (HER-Seg DLA): partial sums per token block, reduce, output. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { LinearAttention, type LinearAttentionAttrs } from '../kernel_names.ts';
import { DlaOutputProgram, DlaPartialProgram, DlaReduceProgram } from './webgpu_program.ts';

const linearAttentionWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { q, k, qRot, kRot, v } = inputs as Record<string, TensorInfo>;
  const { eps } = attrs as unknown as LinearAttentionAttrs;
  const gpu = backend as WebGPUBackend;
  const [B, H, N, Dk] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const shared = gpu.device.limits.maxComputeWorkgroupStorageSize;
  const block = [64, 32, 16, 8].find((tb) => tb * (2 * Dk + Dv) * 4 <= shared);
  if (block === undefined) throw new GatedError('kernel', `d_k ${Dk} / d_v ${Dv} do not fit the device's workgroup memory`);
  const nB = Math.ceil(N / block);
  const BH = B * H;
  const uniforms = [N, BH, Dk, Dv, nB].map((x) => ({ type: 'int32', data: [x] }));
  uniforms.push({ type: 'float32', data: [eps] });
  const part = gpu.runWebGPUProgram(new DlaPartialProgram(BH, nB, Dk, Dv, block), [k!, kRot!, v!], 'float32', uniforms);
  const kv = gpu.runWebGPUProgram(new DlaReduceProgram(BH, Dk * Dv + Dk), [part], 'float32', uniforms);
  gpu.disposeData(part.dataId);
  const out = gpu.runWebGPUProgram(new DlaOutputProgram([B, H, N, Dv]), [q!, qRot!, kv], 'float32', uniforms);
  gpu.disposeData(kv.dataId);
  return out;
};

export const linearAttentionWebgpuConfig: KernelConfig = { kernelName: LinearAttention, backendName: 'webgpu', kernelFunc: linearAttentionWebgpu };
