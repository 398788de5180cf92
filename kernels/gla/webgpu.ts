/**
 * WebGPU kernel for GatedLinearAttention (one scan, added onto `acc`). The three-pass form with 64-token
 * chunks and 16-row sub-chunks (webgpu_chunk_*.ts, sizes baked) runs when d_k and d_v are multiples of 4
 * and a chunk's tiles fit in workgroup memory; otherwise the general four-pass form with 16-token chunks
 * (chunked_programs.ts, no size baked) runs.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { GatedLinearAttention, type GlaAttrs } from '../kernel_names.ts';
import { GlaChunkOutputProgram } from './webgpu_chunk_output.ts';
import { GlaChunkStateProgram, GlaStateScanProgram } from './webgpu_chunk_programs.ts';
import { GLA_CHUNK, GlaChunkStatePass, GlaCumsumPass, GlaOutputPass, GlaStateScanPass } from './chunked_programs.ts';

/** Largest chunks the kernels may pick: `maxChunk` for the single-direction three-pass kernel (also a cap for the
 *  fused one), `biMaxChunk` for the fused bidirectional kernel, whose 32-token chunks ran 0.93 ms against 1.28 ms
 *  for 64-token ones on an H200 (B1 H3 N65536 d_k 32 d_v 64, bench/RESULTS.md). Benchmarks and tests change them. */
export const glaTuning = { maxChunk: 64, biMaxChunk: 32 };

/** Largest chunk (64, 32 or 16 rows) whose workgroup tiles fit the device, or 0 when none does. */
export function glaChunkSize(dk: number, dv: number, maxSharedBytes: number, maxInvocations: number): number {
  if (dk % 4 !== 0 || dv % 4 !== 0) return 0;
  for (const c of [64, 32, 16].filter((x) => x <= glaTuning.maxChunk)) {
    const state = c * (2 * dk + dv) * 4; // gsh, ksh, vsh
    const out = (c * (2 * dk + 16) + Math.max(c * dk, dk * dv)) * 4; // gsh, khat, adiag, ksh (k, then S_c)
    if (Math.max(state, out) <= maxSharedBytes && 4 * c <= maxInvocations && 256 <= maxInvocations) return c;
  }
  return 0;
}

const glaWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { q, k, v, logDecay, acc } = inputs as Record<string, TensorInfo>;
  const { reverse, scale } = attrs as unknown as GlaAttrs;
  return glaScanWebgpu(backend as WebGPUBackend, [q!, k!, v!, logDecay!, acc!], reverse, scale);
};

/** One scan added onto `acc` (the GatedLinearAttention kernel; also BiGLA's split form). */
export function glaScanWebgpu(gpu: WebGPUBackend, [q, k, v, logDecay, acc]: TensorInfo[], reverse: boolean, scale: number): TensorInfo {
  const [B, H, T, Dk] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const uniforms = (nC: number) => [
    { type: 'int32', data: [T] },
    { type: 'int32', data: [B * H] },
    { type: 'int32', data: [nC] },
    { type: 'int32', data: [reverse ? 1 : 0] },
    { type: 'float32', data: [scale] },
  ];
  const limits = gpu.device.limits;
  const C = glaChunkSize(Dk, Dv, limits.maxComputeWorkgroupStorageSize, limits.maxComputeInvocationsPerWorkgroup);
  if (C > 0) {
    const nC = Math.ceil(T / C);
    if (nC > limits.maxComputeWorkgroupsPerDimension || B * H > limits.maxComputeWorkgroupsPerDimension) {
      throw new GatedError('kernel', `GLA with ${nC} chunks x ${B * H} heads exceeds the dispatch limit`);
    }
    const u = uniforms(nC);
    const ds = gpu.runWebGPUProgram(new GlaChunkStateProgram(B * H, nC, Dk, Dv, C), [k!, v!, logDecay!], 'float32', u);
    const fold = gpu.runWebGPUProgram(new GlaStateScanProgram(B * H, nC, Dk, Dv, C, 'fold'), [ds], 'float32', u);
    const segs = gpu.runWebGPUProgram(new GlaStateScanProgram(B * H, nC, Dk, Dv, C, 'segments'), [fold], 'float32', u);
    const states = gpu.runWebGPUProgram(new GlaStateScanProgram(B * H, nC, Dk, Dv, C, 'apply'), [ds, segs], 'float32', u);
    for (const t of [ds, fold, segs]) gpu.disposeData(t.dataId);
    const out = gpu.runWebGPUProgram(new GlaChunkOutputProgram([B, H, T, Dv], nC, Dk, Dv, C), [q!, k!, v!, logDecay!, states, acc!], 'float32', u);
    gpu.disposeData(states.dataId);
    return out;
  }
  return generalScan(gpu, [q!, k!, v!, logDecay!, acc!], [B, H, T, Dk, Dv], reverse, scale);
}

/** Four passes over 16-token chunks, any d_k and d_v. */
function generalScan(b: WebGPUBackend, [q, k, v, g, acc]: TensorInfo[], [B, H, T, Dk, Dv]: number[], reverse: boolean, scale: number): TensorInfo {
  const BH = B! * H!;
  const nC = Math.ceil(T! / GLA_CHUNK);
  const uniforms = [T!, BH, Dk!, Dv!, nC, reverse ? 1 : 0].map((x) => ({ type: 'int32', data: [x] }));
  uniforms.push({ type: 'float32', data: [scale] });
  const G = b.runWebGPUProgram(new GlaCumsumPass([BH, nC * GLA_CHUNK, Dk!]), [g!], 'float32', uniforms);
  const dS = b.runWebGPUProgram(new GlaChunkStatePass([BH, nC, Dk!, Dv!]), [k!, v!, G], 'float32', uniforms);
  const Sp = b.runWebGPUProgram(new GlaStateScanPass([BH, nC, Dk!, Dv!]), [dS, G], 'float32', uniforms);
  const out = b.runWebGPUProgram(new GlaOutputPass([B!, H!, T!, Dv!]), [q!, k!, v!, G, Sp, acc!], 'float32', uniforms);
  for (const t of [G, dS, Sp]) b.disposeData(t.dataId);
  return out;
}

export const glaWebgpuConfig: KernelConfig = { kernelName: GatedLinearAttention, backendName: 'webgpu', kernelFunc: glaWebgpu };
