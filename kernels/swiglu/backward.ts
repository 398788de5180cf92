/**
 * The backward pass of SwigluFused as one kernel on WebGPU: du = [dy·v·σ(a)(1 + a(1 − σ(a))) | dy·SiLU(a)] for
 * u = [a | v]. Elsewhere it is the VJP of the reference, which the kernel is tested against.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { forceReference } from '../flags.ts';
import { vjp } from '../vjp.ts';
import { swigluReference } from './reference.ts';

export const SwigluGrad = 'SwigluGrad';

export function swigluGrad(dy: tf.Tensor, u: tf.Tensor): tf.Tensor {
  if (forceReference() || tf.getKernel(SwigluGrad, tf.getBackend()) === undefined) return vjp((a) => swigluReference(a), [u], dy)[0]!;
  return tf.engine().runKernel(SwigluGrad, { dy, u }) as tf.Tensor;
}

class SwigluGradProgram implements WebGPUProgram {
  variableNames = ['dy', 'u'];
  outputShape: number[];
  shaderKey = 'swiglu_grad';
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'I : i32,';
  size = true;

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = flatDispatch(shape.reduce((a, b) => a * b, 1), this.workgroupSize[0]);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let I = uniforms.I;
        let row = index / (2 * I);
        let c = index % (2 * I);
        let i = c % I;
        let a = u[row * 2 * I + i];
        let s = 1.0 / (1.0 + exp(-a));
        let g = dy[row * I + i];
        if (c < I) { result[index] = g * u[row * 2 * I + I + i] * s * (1.0 + a * (1.0 - s)); }
        else { result[index] = g * a * s; }
      }
    `;
  }
}

const swigluGradWebgpu: KernelFunc = ({ inputs, backend }) => {
  const { dy, u } = inputs as Record<string, TensorInfo>;
  const uniforms = [{ type: 'int32', data: [u!.shape[u!.shape.length - 1]! / 2] }];
  return (backend as WebGPUBackend).runWebGPUProgram(new SwigluGradProgram(u!.shape), [dy!, u!], 'float32', uniforms);
};

export const swigluGradWebgpuConfig: KernelConfig = { kernelName: SwigluGrad, backendName: 'webgpu', kernelFunc: swigluGradWebgpu };
