/** WebGPU kernel for SwigluFused: one invocation per output element (four when I is a multiple of 4). */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { SwigluFused } from '../kernel_names.ts';

class SwigluProgram implements WebGPUProgram {
  variableNames = ['u'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'I : i32,';
  size = true;
  outputComponent: number;
  variableComponents: number[];

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.outputComponent = shape[shape.length - 1]! % 4 === 0 ? 4 : 1;
    this.variableComponents = [this.outputComponent];
    this.shaderKey = `swiglu_fused_c${this.outputComponent}`;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = flatDispatch(shape.reduce((a, b) => a * b, 1) / this.outputComponent, this.workgroupSize[0]);
  }

  getUserCode(): string {
    const T = this.outputComponent === 4 ? 'vec4<f32>' : 'f32';
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        // I4 = output groups per row; a row of u holds 2·I4 (gate groups, then value groups)
        let I4 = uniforms.I / ${this.outputComponent};
        let row = index / I4;
        let c = index % I4;
        let a = ${T}(u[row * 2 * I4 + c]);
        let b = ${T}(u[row * 2 * I4 + I4 + c]);
        result[index] = a / (${T}(1.0) + exp(-a)) * b;
      }
    `;
  }
}

const swigluWebgpu: KernelFunc = ({ inputs, backend }) => {
  const { u } = inputs as Record<string, TensorInfo>;
  const shape = u!.shape.slice();
  shape[shape.length - 1] = shape[shape.length - 1]! / 2;
  const uniforms = [{ type: 'int32', data: [shape[shape.length - 1]!] }];
  return (backend as WebGPUBackend).runWebGPUProgram(new SwigluProgram(shape), [u!], 'float32', uniforms);
};

export const swigluWebgpuConfig: KernelConfig = { kernelName: SwigluFused, backendName: 'webgpu', kernelFunc: swigluWebgpu };
