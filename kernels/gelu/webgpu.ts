/**
 * WebGPU kernel for GeluFused: one invocation per element. erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7;
 * WGSL has no erf), as the fused depthwise convolution's GELU.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { GeluFused, type GeluAttrs } from '../kernel_names.ts';

const BODY = {
  erf: `let z = abs(a) * 0.70710678118654752;
        let t = 1.0 / (1.0 + 0.3275911 * z);
        let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-z * z);
        return 0.5 * a * (1.0 + sign(a) * y);`,
  tanh: 'let u = 0.7978845608028654 * (a + 0.044715 * a * a * a); return 0.5 * a * (1.0 + tanh(clamp(u, -15.0, 15.0)));',
};

class GeluProgram implements WebGPUProgram {
  variableNames = ['x'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  size = true;

  constructor(shape: number[], private readonly approximate: 'erf' | 'tanh') {
    this.outputShape = shape;
    this.shaderKey = `gelu_fused_${approximate}`;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = flatDispatch(shape.reduce((a, b) => a * b, 1), this.workgroupSize[0]);
  }

  getUserCode(): string {
    return `
      fn gelu(a : f32) -> f32 { ${BODY[this.approximate]} }
      fn main(index : i32) {
        if (index < uniforms.size) { result[index] = gelu(x[index]); }
      }
    `;
  }
}

const geluWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x } = inputs as Record<string, TensorInfo>;
  const { approximate } = attrs as unknown as GeluAttrs;
  return (backend as WebGPUBackend).runWebGPUProgram(new GeluProgram(x!.shape, approximate), [x!], 'float32');
};

export const geluWebgpuConfig: KernelConfig = { kernelName: GeluFused, backendName: 'webgpu', kernelFunc: geluWebgpu };
