/**
 * WebGPU kernel for MatMulFast: the tiled fp32 program; precision 'f16' runs a subgroup-matrix program where
 * the device has one and the operands fit its blocks (untransposed): the staged program for whole 128-blocks,
 * the direct one for 64-blocks, and fp32 everywhere else.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { MatMulFast, type MatMulFastAttrs } from '../kernel_names.ts';
import { HalfPackProgram, MatMulHalfProgram, halfMatmulFits, halfMatmulShape } from './webgpu_half.ts';
import { MatMulHalfStagedProgram, stagedFits } from './webgpu_half_staged.ts';
import { MatMulTiledProgram, matmulTile } from './webgpu_program.ts';

const matmulWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { a, b } = inputs as Record<string, TensorInfo>;
  const { transposeA, transposeB, precision } = attrs as unknown as MatMulFastAttrs;
  const gpu = backend as WebGPUBackend;
  const [batch, r1, r2] = a!.shape as [number, number, number];
  const [batchB, s1, s2] = b!.shape as [number, number, number];
  const [M, K] = transposeA ? [r2, r1] : [r1, r2];
  const N = transposeB ? s1 : s2;
  const uniforms = [M, N, K, batchB].map((v) => ({ type: 'int32', data: [v] }));
  const half = precision === 'f16' && !transposeA && !transposeB ? halfMatmulShape() : null;
  if (half && halfMatmulFits(half.config, M, N, K)) {
    const pack = (t: TensorInfo) => {
      const n = t.shape.reduce((p, d) => p * d, 1);
      return gpu.runWebGPUProgram(new HalfPackProgram(n), [t], 'int32', [{ type: 'int32', data: [n] }]);
    };
    const [ha, hb] = [pack(a!), pack(b!)];
    const program = stagedFits(half.config, M, N, K) ? new MatMulHalfStagedProgram([batch, M, N], half.config, half.subgroup) : new MatMulHalfProgram([batch, M, N], half.config, half.subgroup);
    const out = gpu.runWebGPUProgram(program, [ha, hb], 'float32', uniforms);
    gpu.disposeData(ha.dataId);
    gpu.disposeData(hb.dataId);
    return out;
  }
  return gpu.runWebGPUProgram(new MatMulTiledProgram([batch, M, N], transposeA, transposeB, K, null, matmulTile(batch, M, N)), [a!, b!], 'float32', uniforms);
};

export const matmulWebgpuConfig: KernelConfig = { kernelName: MatMulFast, backendName: 'webgpu', kernelFunc: matmulWebgpu };
