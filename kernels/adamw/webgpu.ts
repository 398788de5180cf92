/**
 * WebGPU kernel for AdamWUpdate: one elementwise dispatch per output (parameter, m, v), each recomputing the two
 * moments from the same inputs. Three dispatches with the step's numbers as uniforms replace the fourteen kernels
 * and eight scalar uploads of the composite per parameter: the optimizer was a tenth of a training step's
 * dispatches, each paying tfjs's host cost.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { AdamWUpdate, type AdamWAttrs } from '../kernel_names.ts';

// each output reads only what it needs (an unread input would have no binding in the shader's layout)
const INPUTS = { param: ['param', 'm', 'v', 'grad'], m: ['m', 'grad'], v: ['v', 'grad'] } as const;
const OUT = {
  param: `let gi = grad[index];
          let mi = m[index] * uniforms.beta1 + gi * uniforms.omb1;
          let vi = v[index] * uniforms.beta2 + (gi * gi) * uniforms.omb2;
          let u = (mi / uniforms.b1c) / (sqrt(vi / uniforms.b2c) + uniforms.eps);
          let pi = param[index];
          result[index] = (pi - pi * uniforms.lrWd) - u * uniforms.lr;`,
  m: 'let gi = grad[index]; result[index] = m[index] * uniforms.beta1 + gi * uniforms.omb1;',
  v: 'let gi = grad[index]; result[index] = v[index] * uniforms.beta2 + (gi * gi) * uniforms.omb2;',
};

class AdamWProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'beta1 : f32, omb1 : f32, beta2 : f32, omb2 : f32, b1c : f32, b2c : f32, eps : f32, lr : f32, lrWd : f32,';
  size = true;

  constructor(
    shape: number[],
    private readonly which: AdamWAttrs['which'],
  ) {
    this.variableNames = [...INPUTS[which]];
    this.outputShape = shape;
    this.shaderKey = `adamw_${which}`;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = flatDispatch(shape.reduce((a, b) => a * b, 1), this.workgroupSize[0]);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${OUT[this.which]}
        }
      }
    `;
  }
}

const adamwWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { param, m, v, grad } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as AdamWAttrs;
  const uniforms = [a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.b1c, a.b2c, a.eps, a.lr, a.lrWd].map((x) => ({ type: 'float32', data: [x] }));
  const all = { param: param!, m: m!, v: v!, grad: grad! };
  return (backend as WebGPUBackend).runWebGPUProgram(new AdamWProgram(param!.shape, a.which), INPUTS[a.which].map((n) => all[n]), 'float32', uniforms);
};

export const adamwWebgpuConfig: KernelConfig = { kernelName: AdamWUpdate, backendName: 'webgpu', kernelFunc: adamwWebgpu };
