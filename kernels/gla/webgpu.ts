/** WebGPU kernel for GatedLinearAttention (one scan, added onto `acc`): the four chunked passes. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { GatedLinearAttention, type GlaAttrs } from '../kernel_names.ts';
import { GLA_CHUNK, GlaChunkStatePass, GlaCumsumPass, GlaOutputPass, GlaStateScanPass } from './chunked_programs.ts';

const glaWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WebGPUBackend;
  const { q, k, v, logDecay, acc } = inputs as Record<string, TensorInfo>;
  const { reverse, scale } = attrs as unknown as GlaAttrs;
  const [B, H, T, Dk] = q!.shape as [number, number, number, number];
  const Dv = v!.shape[3]!;
  const BH = B * H;
  const nC = Math.ceil(T / GLA_CHUNK);
  const uniforms = [
    { type: 'int32', data: [T] },
    { type: 'int32', data: [BH] },
    { type: 'int32', data: [Dk] },
    { type: 'int32', data: [Dv] },
    { type: 'int32', data: [nC] },
    { type: 'int32', data: [reverse ? 1 : 0] },
    { type: 'float32', data: [scale] },
  ];
  const G = b.runWebGPUProgram(new GlaCumsumPass([BH, nC * GLA_CHUNK, Dk]), [logDecay!], 'float32', uniforms);
  const dS = b.runWebGPUProgram(new GlaChunkStatePass([BH, nC, Dk, Dv]), [k!, v!, G], 'float32', uniforms);
  const Sp = b.runWebGPUProgram(new GlaStateScanPass([BH, nC, Dk, Dv]), [dS, G], 'float32', uniforms);
  const out = b.runWebGPUProgram(new GlaOutputPass([B, H, T, Dv]), [q!, k!, v!, G, Sp, acc!], 'float32', uniforms);
  for (const t of [G, dS, Sp]) b.disposeData(t.dataId);
  return out;
};

export const glaWebgpuConfig: KernelConfig = { kernelName: GatedLinearAttention, backendName: 'webgpu', kernelFunc: glaWebgpu };
