/**
 * WebGPU kernel for BiGatedLinearAttention: both scans of ViG's BiGLA in five dispatches, sharing every load of
 * q, k and v and writing the merged output once (no accumulator read):
 *   1. GlaBiStateProgram    per (chunk, head, direction): ΔS and γ
 *   2-4. GlaStateScanProgram ×3 (fold, segments, apply) over 2·BH sequences: the state entering each chunk
 *   5. GlaBiOutputProgram   per (chunk, head): both directions' intra- and inter-chunk terms
 * Shapes the fused programs cannot take (d_k or d_v not a multiple of 4, tiles past the device's workgroup
 * memory) run as two single-direction scans (webgpu.ts).
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { getKernel } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { BiGatedLinearAttention, type BiGlaAttrs } from './names.ts';
import { glaScanWebgpu, glaTuning } from './webgpu.ts';
import { GlaBiOutputProgram, glaBiOutputInvocations, glaBiOutputSharedFloats } from './webgpu_bi_output.ts';
import { GlaBiStateProgram } from './webgpu_bi_state.ts';
import { GlaStateScanProgram } from './webgpu_chunk_programs.ts';

/** Largest chunk (64, 32 or 16 tokens, at most maxChunk) the fused programs can use, or 0 when none fits. */
export function glaBiChunkSize(dk: number, dv: number, maxSharedBytes: number, maxInvocations: number, maxChunk = glaTuning.maxChunk): number {
  if (dk % 4 !== 0 || dv % 4 !== 0) return 0;
  for (const c of [64, 32, 16].filter((x) => x <= maxChunk)) {
    const state = (c * dk + c * dv + (c / 8) * dk) * 4;
    const out = glaBiOutputSharedFloats(dk, dv, c) * 4;
    if (Math.max(state, out) <= maxSharedBytes && glaBiOutputInvocations(dv, c) <= maxInvocations && 128 <= maxInvocations) return c;
  }
  return 0;
}

const glaBiWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { q, k, v, logDecayFwd: gf, logDecayBwd: gb } = inputs as Record<string, TensorInfo>;
  const { scale } = attrs as unknown as BiGlaAttrs;
  const gpu = backend as WebGPUBackend;
  const [B, H, T, Dk] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const limits = gpu.device.limits;
  const C = glaBiChunkSize(Dk, Dv, limits.maxComputeWorkgroupStorageSize, Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX), Math.min(glaTuning.maxChunk, glaTuning.biMaxChunk));
  if (C === 0) return splitScans(gpu, [q!, k!, v!, gf!, gb!], scale);
  const BH = B * H;
  const nC = Math.ceil(T / C);
  if (nC > limits.maxComputeWorkgroupsPerDimension || BH > limits.maxComputeWorkgroupsPerDimension) {
    throw new GatedError('kernel', `BiGLA with ${nC} chunks x ${BH} heads exceeds the dispatch limit`);
  }
  // the scans see the two directions as 2·BH sequences
  const uniforms = (bh: number) => [
    { type: 'int32', data: [T] },
    { type: 'int32', data: [bh] },
    { type: 'int32', data: [nC] },
    { type: 'int32', data: [0] },
    { type: 'float32', data: [scale] },
  ];
  const [u, u2] = [uniforms(BH), uniforms(2 * BH)];
  const ds = gpu.runWebGPUProgram(new GlaBiStateProgram(BH, nC, Dk, Dv, C), [k!, v!, gf!, gb!], 'float32', u);
  const fold = gpu.runWebGPUProgram(new GlaStateScanProgram(2 * BH, nC, Dk, Dv, C, 'fold'), [ds], 'float32', u2);
  const segs = gpu.runWebGPUProgram(new GlaStateScanProgram(2 * BH, nC, Dk, Dv, C, 'segments'), [fold], 'float32', u2);
  const states = gpu.runWebGPUProgram(new GlaStateScanProgram(2 * BH, nC, Dk, Dv, C, 'apply'), [ds, segs], 'float32', u2);
  for (const t of [ds, fold, segs]) gpu.disposeData(t.dataId);
  const out = gpu.runWebGPUProgram(new GlaBiOutputProgram([B, H, T, Dv], nC, Dk, Dv, C), [q!, k!, v!, gf!, gb!, states], 'float32', u);
  gpu.disposeData(states.dataId);
  return out;
};

/** The two scans one after the other, the forward one's output as the backward one's accumulator. */
function splitScans(gpu: WebGPUBackend, [q, k, v, gf, gb]: TensorInfo[], scale: number): TensorInfo {
  const fill = getKernel('Fill', 'webgpu')!.kernelFunc;
  const zero = fill({ inputs: {}, backend: gpu, attrs: { shape: [...q!.shape.slice(0, 3), v!.shape[3]!], value: 0, dtype: 'float32' } }) as TensorInfo;
  const fwd = glaScanWebgpu(gpu, [q!, k!, v!, gf!, zero], false, scale);
  const out = glaScanWebgpu(gpu, [q!, k!, v!, gb!, fwd], true, scale);
  gpu.disposeData(zero.dataId);
  gpu.disposeData(fwd.dataId);
  return out;
}

export const glaBiWebgpuConfig: KernelConfig = { kernelName: BiGatedLinearAttention, backendName: 'webgpu', kernelFunc: glaBiWebgpu };
