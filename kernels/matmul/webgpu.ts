/** WebGPU kernel for MatMulFast: the tiled fp32 program (precision 'f16' also runs it, see op.ts). */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { MatMulFast, type MatMulFastAttrs } from '../kernel_names.ts';
import { MatMulTiledProgram } from './webgpu_program.ts';

const matmulWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { a, b } = inputs as Record<string, TensorInfo>;
  const { transposeA, transposeB } = attrs as unknown as MatMulFastAttrs;
  const [batch, r1, r2] = a!.shape as [number, number, number];
  const [batchB, s1, s2] = b!.shape as [number, number, number];
  const [M, K] = transposeA ? [r2, r1] : [r1, r2];
  const N = transposeB ? s1 : s2;
  const program = new MatMulTiledProgram([batch, M, N], transposeA, transposeB, K);
  const uniforms = [M, N, K, batchB].map((v) => ({ type: 'int32', data: [v] }));
  return (backend as WebGPUBackend).runWebGPUProgram(program, [a!, b!], 'float32', uniforms);
};

export const matmulWebgpuConfig: KernelConfig = { kernelName: MatMulFast, backendName: 'webgpu', kernelFunc: matmulWebgpu };
