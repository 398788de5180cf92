/**
 * WebGPU kernel for TokensToHeads: one invocation per output element (head channel fastest, so neighbouring
 * invocations read neighbouring columns). Whether logσ is applied is baked and named in the shader key; the
 * sizes and the scale are uniforms.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { TokensToHeads, type TokensToHeadsAttrs } from '../kernel_names.ts';

class TokensToHeadsProgram implements WebGPUProgram {
  variableNames = ['p'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'N : i32, P : i32, begin : i32, H : i32, D : i32, scale : f32,';
  size = true;

  constructor(shape: number[], private readonly logSigmoid: boolean) {
    this.outputShape = shape;
    this.shaderKey = `tokens_to_heads_${logSigmoid ? 'logsigmoid' : 'copy'}`;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = flatDispatch(shape.reduce((a, b) => a * b, 1), this.workgroupSize[0]);
  }

  getUserCode(): string {
    // logσ(x) = min(x, 0) − log(1 + e^−|x|), stable for large |x| of either sign
    const value = this.logSigmoid ? '(min(x, 0.0) - log(1.0 + exp(-abs(x)))) / uniforms.scale' : 'x';
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let D = uniforms.D;
        let N = uniforms.N;
        let d = index % D;
        let n = (index / D) % N;
        let h = (index / (D * N)) % uniforms.H;
        let b = index / (D * N * uniforms.H);
        let x = p[(b * N + n) * uniforms.P + uniforms.begin + h * D + d];
        result[index] = ${value};
      }
    `;
  }
}

const tokensToHeadsWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { p } = inputs as Record<string, TensorInfo>;
  const { begin, size, heads, logSigmoidScale } = attrs as unknown as TokensToHeadsAttrs;
  const [B, N, P] = p!.shape as [number, number, number];
  const D = size / heads;
  const uniforms = [N, P, begin, heads, D].map((v) => ({ type: 'int32', data: [v] }));
  uniforms.push({ type: 'float32', data: [logSigmoidScale > 0 ? logSigmoidScale : 1] });
  return (backend as WebGPUBackend).runWebGPUProgram(new TokensToHeadsProgram([B, heads, N, D], logSigmoidScale > 0), [p!], 'float32', uniforms);
};

export const tokensToHeadsWebgpuConfig: KernelConfig = { kernelName: TokensToHeads, backendName: 'webgpu', kernelFunc: tokensToHeadsWebgpu };
