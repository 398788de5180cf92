/**
 * RMSNorm in WGSL: one workgroup of 64 invocations per row; each invocation sums the squares of a strided part
 * of the row, the workgroup reduces the 64 partial sums in shared memory, then every invocation scales its part.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';

const WG = 64;

export class RmsNormProgram implements WebGPUProgram {
  variableNames = ['x', 'gamma'];
  outputShape: number[];
  shaderKey = 'rms_norm_fused';
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'C : i32, rows : i32, eps : f32,';

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatchLayout = { x: [0] };
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    // one workgroup per row, over x and y past the 65535-workgroup limit per dimension
    this.dispatch = flatDispatch(rows, 1);
  }

  getUserCode(): string {
    return `
      var<workgroup> partial : array<f32, ${WG}>;
      fn main(unused : i32) {
        let row = i32(workgroupId.y * numWorkgroups.x + workgroupId.x);
        let t = i32(localId.x);
        let C = uniforms.C;
        let live = row < uniforms.rows;
        let base = row * C;
        var s = 0.0;
        if (live) {
          for (var c = t; c < C; c += ${WG}) { let v = x[base + c]; s = fma(v, v, s); }
        }
        partial[t] = s;
        workgroupBarrier();
        for (var stride = ${WG / 2}; stride > 0; stride = stride / 2) {
          if (t < stride) { partial[t] = partial[t] + partial[t + stride]; }
          workgroupBarrier();
        }
        if (!live) { return; }
        let r = inverseSqrt(partial[0] / f32(C) + uniforms.eps);
        for (var c = t; c < C; c += ${WG}) { result[base + c] = x[base + c] * r * gamma[c]; }
      }
    `;
  }
}
