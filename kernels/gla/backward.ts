/**
 * The backward pass of BiGatedLinearAttention as a WebGPU kernel (BiGatedLinearAttentionGrad; the same programs
 * for one direction give GatedLinearAttentionGrad), in place of the
 * VJP of the tfjs-ops chunked form (hundreds of ops, O(T·16·d_k) intermediates). Ten dispatches:
 *   1. GlaBiGradStateProgram   per (chunk, head, z): ΔS and ΔR with γ for both directions (4·BH sequences)
 *   2-4. GlaStateScanProgram ×3 over 4·BH sequences: forward states S and reverse states R entering each chunk
 *   5. GlaBiGradChunkProgram   per (chunk, head): dq, dk, dv and each direction's in-chunk gate sums
 *   6. GlaGateTotalsProgram, 7-9. GlaStateScanProgram ×3 (DV = 1), 10. GlaGateGradProgram: the gate gradients
 * then one copy per gradient out of the packed buffers. Chunks of 32 or 16 tokens, whichever fits workgroup
 * memory; d_k and d_v must be multiples of 4 (`glaBiGradChunkSize` says 0 otherwise, and the gradient stays the VJP).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { forceReference } from '../flags.ts';
import type { GlaAttrs } from '../kernel_names.ts';
import { BiGatedLinearAttentionGrad, GatedLinearAttentionGrad, type BiGlaAttrs } from './names.ts';
import { GlaBiGradChunkProgram, glaBiGradSharedFloats, type GlaGradDirs } from './webgpu_bi_grad_chunk.ts';
import { GlaGateGradProgram, GlaGateTotalsProgram } from './webgpu_bi_grad_gates.ts';
import { GlaBiGradStateProgram } from './webgpu_bi_grad_state.ts';
import { GlaStateScanProgram } from './webgpu_chunk_programs.ts';

/** Largest chunk the backward may pick (benchmarks and tests change it). */
export const glaBiGradTuning = { maxChunk: 32 };

/** Largest chunk (32 or 16 tokens) whose workgroup tiles fit, or 0 when none does (then the gradient is the VJP). */
export function glaBiGradChunkSize(dk: number, dv: number, maxSharedBytes: number, maxInvocations: number): number {
  if (dk % 4 !== 0 || dv % 4 !== 0 || maxInvocations < 256) return 0;
  for (const c of [32, 16].filter((x) => x <= glaBiGradTuning.maxChunk)) {
    if (glaBiGradSharedFloats(dk, dv, c) * 4 <= maxSharedBytes && (c * (dk + dv) * 4) <= maxSharedBytes) return c;
  }
  return 0;
}

/** The chunk the active backend would use for these sizes, or 0 when the kernel cannot run there. */
export function glaBiGradKernelChunk(dk: number, dv: number, kernel = BiGatedLinearAttentionGrad): number {
  if (forceReference() || tf.getBackend() !== 'webgpu' || tf.getKernel(kernel, 'webgpu') === undefined) return 0;
  const limits = (tf.backend() as unknown as WebGPUBackend).device.limits;
  return glaBiGradChunkSize(dk, dv, limits.maxComputeWorkgroupStorageSize, Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX));
}

/** [dq, dk, dv, dLogDecayFwd, dLogDecayBwd] by the kernel; callers check glaBiGradKernelChunk first. */
export function glaBiGradKernel(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecayFwd: tf.Tensor4D, logDecayBwd: tf.Tensor4D, dy: tf.Tensor4D, scale: number): tf.Tensor4D[] {
  const attrs: BiGlaAttrs = { scale };
  return tf.engine().runKernel(BiGatedLinearAttentionGrad, { q, k, v, logDecayFwd, logDecayBwd, dy }, attrs as unknown as NamedAttrMap) as unknown as tf.Tensor4D[];
}

/** [dq, dk, dv, dLogDecay] of one scan by the kernel; callers check glaBiGradKernelChunk(…, GatedLinearAttentionGrad) first. */
export function glaGradKernel(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecay: tf.Tensor4D, dy: tf.Tensor4D, reverse: boolean, scale: number): tf.Tensor4D[] {
  const attrs: GlaAttrs = { reverse, scale };
  return tf.engine().runKernel(GatedLinearAttentionGrad, { q, k, v, logDecay, dy }, attrs as unknown as NamedAttrMap) as unknown as tf.Tensor4D[];
}

const glaBiGradWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { q, k, v, logDecayFwd: gf, logDecayBwd: gb, dy } = inputs as Record<string, TensorInfo>;
  const { scale } = attrs as unknown as BiGlaAttrs;
  return gradWebgpu(backend as WebGPUBackend, [q!, k!, v!, dy!, gf!, gb!], 'both', scale);
};

const glaGradWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { q, k, v, logDecay: g, dy } = inputs as Record<string, TensorInfo>;
  const { reverse, scale } = attrs as unknown as GlaAttrs;
  // the programs pick the direction's gates by name: one tensor serves as both
  return gradWebgpu(backend as WebGPUBackend, [q!, k!, v!, dy!, g!, g!], reverse ? 'bwd' : 'fwd', scale);
};

/** [dq, dk, dv, then the log-gate gradient of each direction in `dirs`]. */
function gradWebgpu(gpu: WebGPUBackend, [q, k, v, dy, gf, gb]: TensorInfo[], dirs: GlaGradDirs, scale: number): TensorInfo[] {
  const [B, H, T, Dk] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const limits = gpu.device.limits;
  const C = glaBiGradChunkSize(Dk, Dv, limits.maxComputeWorkgroupStorageSize, Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX));
  if (C === 0) throw new GatedError('kernel', `the GLA backward kernel cannot run d_k ${Dk}, d_v ${Dv} on this device (needs multiples of 4 that fit workgroup memory)`);
  const BH = B * H;
  const nC = Math.ceil(T / C);
  if (nC > limits.maxComputeWorkgroupsPerDimension || BH > limits.maxComputeWorkgroupsPerDimension) {
    throw new GatedError('kernel', `GLA backward with ${nC} chunks x ${BH} heads exceeds the dispatch limit`);
  }
  const slots = dirs === 'both' ? 2 : 1;
  const uniforms = (bh: number) => [
    { type: 'int32', data: [T] },
    { type: 'int32', data: [bh] },
    { type: 'int32', data: [nC] },
    { type: 'int32', data: [0] },
    { type: 'float32', data: [scale] },
  ];
  const run = (p: ConstructorParameters<typeof GlaStateScanProgram>, x: TensorInfo[], bh: number) => gpu.runWebGPUProgram(new GlaStateScanProgram(...p), x, 'float32', uniforms(bh));
  const scan = (ds: TensorInfo, seqs: number, dv: number): TensorInfo => {
    const fold = run([seqs, nC, Dk, dv, C, 'fold'], [ds], seqs);
    const segs = run([seqs, nC, Dk, dv, C, 'segments'], [fold], seqs);
    const out = run([seqs, nC, Dk, dv, C, 'apply'], [ds, segs], seqs);
    for (const t of [ds, fold, segs]) gpu.disposeData(t.dataId);
    return out;
  };
  const u = uniforms(BH);
  const ins = [q!, k!, v!, dy!, gf!, gb!];
  const states = scan(gpu.runWebGPUProgram(new GlaBiGradStateProgram(BH, nC, Dk, Dv, C, dirs), ins, 'float32', u), 2 * slots * BH, Dv);
  const packed = gpu.runWebGPUProgram(new GlaBiGradChunkProgram(BH, T, nC, Dk, Dv, C, dirs), [...ins, states], 'float32', u);
  gpu.disposeData(states.dataId);
  const carry = scan(gpu.runWebGPUProgram(new GlaGateTotalsProgram(BH, nC, Dk, Dv, C, dirs), [packed], 'float32', u), slots * BH, 1);
  const gates = gpu.runWebGPUProgram(new GlaGateGradProgram(BH, T, Dk, Dv, C, dirs), [packed, carry], 'float32', u);
  gpu.disposeData(carry.dataId);
  const nk = BH * T * Dk;
  const out = [part(gpu, packed, 0, [B, H, T, Dk]), part(gpu, packed, nk, [B, H, T, Dk]), part(gpu, packed, 2 * nk, [B, H, T, Dv])];
  for (let s = 0; s < slots; s++) out.push(part(gpu, gates, s * nk, [B, H, T, Dk]));
  gpu.disposeData(packed.dataId);
  gpu.disposeData(gates.dataId);
  return out;
}

/** A copy of `size(shape)` floats from `offset` of a packed buffer, as a tensor of that shape. */
function part(gpu: WebGPUBackend, packed: TensorInfo, offset: number, shape: number[]): TensorInfo {
  const n = shape.reduce((a, b) => a * b, 1);
  const flat = { ...packed, shape: [packed.shape.reduce((a, b) => a * b, 1)] };
  const slice = tf.getKernel('Slice', 'webgpu')!.kernelFunc({ inputs: { x: flat }, backend: gpu, attrs: { begin: [offset], size: [n] } }) as TensorInfo;
  const reshaped = tf.getKernel('Reshape', 'webgpu')!.kernelFunc({ inputs: { x: slice }, backend: gpu, attrs: { shape } }) as TensorInfo;
  gpu.disposeData(slice.dataId);
  return reshaped;
}

export const glaBiGradWebgpuConfig: KernelConfig = { kernelName: BiGatedLinearAttentionGrad, backendName: 'webgpu', kernelFunc: glaBiGradWebgpu };
export const glaGradWebgpuConfig: KernelConfig = { kernelName: GatedLinearAttentionGrad, backendName: 'webgpu', kernelFunc: glaGradWebgpu };
