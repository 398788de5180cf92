/** WebGPU kernel for DepthwiseConv2dFused. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '../_webgpu_internal.ts';
import { DepthwiseConv2dFused, type DwAttrs } from '../kernel_names.ts';
import { convGeometry } from './op.ts';
import { DwconvProgram } from './webgpu_program.ts';

const dwconvWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, filter, bias, gate } = inputs as Record<string, TensorInfo>;
  const { activation, hasBias, hasGate, padding, strides } = attrs as unknown as DwAttrs;
  const [N, H, W, C] = x!.shape as [number, number, number, number];
  const [KH, KW] = filter!.shape as [number, number];
  const { outH, outW, padTop, padLeft } = convGeometry(H, W, KH, KW, strides, padding);
  const program = new DwconvProgram([N, outH, outW, C], activation, hasGate, hasBias);
  const uniforms = [H, W, C, KH, KW, outH, outW, strides[0], strides[1], padTop, padLeft].map((v) => ({ type: 'int32', data: [v] }));
  const ins = [x!, filter!];
  if (hasBias) ins.push(bias!);
  if (hasGate) ins.push(gate!);
  return (backend as WebGPUBackend).runWebGPUProgram(program, ins, 'float32', uniforms);
};

export const dwconvWebgpuConfig: KernelConfig = { kernelName: DepthwiseConv2dFused, backendName: 'webgpu', kernelFunc: dwconvWebgpu };
