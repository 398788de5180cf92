/**
 * The backward pass of TokensToHeads as one kernel on WebGPU: dp [B, N, P] from dy [B, heads, N, D] (zeros
 * outside the op's columns; times σ(−x)/scale where the op took logσ(x)/scale). Elsewhere it is the VJP of the
 * reference, which the kernel is tested against.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { forceReference } from '../flags.ts';
import type { TokensToHeadsAttrs } from '../kernel_names.ts';
import { vjp } from '../vjp.ts';
import { tokensToHeadsReference } from './reference.ts';

export const TokensToHeadsGrad = 'TokensToHeadsGrad';

export function tokensToHeadsGrad(dy: tf.Tensor, p: tf.Tensor, attrs: TokensToHeadsAttrs): tf.Tensor {
  if (forceReference() || tf.getKernel(TokensToHeadsGrad, tf.getBackend()) === undefined) {
    return vjp((a) => tokensToHeadsReference(a as tf.Tensor3D, attrs), [p], dy)[0]!;
  }
  return tf.engine().runKernel(TokensToHeadsGrad, { dy, p }, { ...attrs } as unknown as NamedAttrMap) as tf.Tensor;
}

class TokensToHeadsGradProgram implements WebGPUProgram {
  // p only where it is read: an unused binding is stripped by the WGSL compiler and the bindings would shift
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'N : i32, P : i32, begin : i32, H : i32, D : i32, scale : f32,';
  size = true;

  constructor(shape: number[], private readonly logSigmoid: boolean) {
    this.outputShape = shape;
    this.variableNames = logSigmoid ? ['dy', 'p'] : ['dy'];
    this.shaderKey = `tokens_to_heads_grad_${logSigmoid ? 'logsigmoid' : 'copy'}`;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = flatDispatch(shape.reduce((a, b) => a * b, 1), this.workgroupSize[0]);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let c = index % uniforms.P - uniforms.begin;
        let D = uniforms.D;
        if (c < 0 || c >= uniforms.H * D) { result[index] = 0.0; return; }
        let bn = index / uniforms.P;
        let N = uniforms.N;
        let g = dy[(((bn / N) * uniforms.H + c / D) * N + bn % N) * D + c % D];
        ${this.logSigmoid ? 'result[index] = g / ((1.0 + exp(p[index])) * uniforms.scale);' : 'result[index] = g;'}
      }
    `;
  }
}

const tokensToHeadsGradWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, p } = inputs as Record<string, TensorInfo>;
  const { begin, size, heads, logSigmoidScale } = attrs as unknown as TokensToHeadsAttrs;
  const [, N, P] = p!.shape as [number, number, number];
  const uniforms = [N, P, begin, heads, size / heads].map((v) => ({ type: 'int32', data: [v] }));
  uniforms.push({ type: 'float32', data: [logSigmoidScale > 0 ? logSigmoidScale : 1] });
  return (backend as WebGPUBackend).runWebGPUProgram(new TokensToHeadsGradProgram(p!.shape, logSigmoidScale > 0), logSigmoidScale > 0 ? [dy!, p!] : [dy!], 'float32', uniforms);
};

export const tokensToHeadsGradWebgpuConfig: KernelConfig = { kernelName: TokensToHeadsGrad, backendName: 'webgpu', kernelFunc: tokensToHeadsGradWebgpu };
