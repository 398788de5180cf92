/** WebGPU kernel for LinearFused: the tiled matmul with its epilogue. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { LinearFused, type LinearFusedAttrs } from '../kernel_names.ts';
import { MatMulTiledProgram, matmulTile } from '../matmul/webgpu_program.ts';

const linearWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { a, w, bias, residual } = inputs as Record<string, TensorInfo>;
  const { activation, hasBias, hasResidual, gated, rmsNormEps } = attrs as unknown as LinearFusedAttrs;
  const K = a!.shape[a!.shape.length - 1]!;
  const M = a!.shape.slice(0, -1).reduce((p, d) => p * d, 1);
  const N = w!.shape[1]!;
  const outN = gated ? N / 2 : N;
  const program = new MatMulTiledProgram([1, M, outN], false, false, K, { activation, hasBias, hasResidual, gated, rmsNorm: rmsNormEps > 0 }, matmulTile(1, M, N, gated));
  const uniforms = [M, N, K, 1].map((v) => ({ type: 'int32', data: [v] }));
  if (rmsNormEps > 0) uniforms.push({ type: 'float32', data: [rmsNormEps] });
  const ins = [a!, w!];
  if (hasBias) ins.push(bias!);
  if (hasResidual) ins.push(residual!);
  const out = (backend as WebGPUBackend).runWebGPUProgram(program, ins, 'float32', uniforms);
  return { dataId: out.dataId, shape: [...a!.shape.slice(0, -1), outN], dtype: out.dtype };
};

export const linearWebgpuConfig: KernelConfig = { kernelName: LinearFused, backendName: 'webgpu', kernelFunc: linearWebgpu };
