/**
 * LayerNorm in WGSL: one workgroup of 64 invocations per row. Two reductions in shared memory, the mean and
 * then the sum of squared deviations from it (two passes, as PyTorch computes it, so a large common offset
 * does not cancel the variance away), then every invocation normalises a strided part of the row.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';

const WG = 64;

export class LayerNormProgram implements WebGPUProgram {
  variableNames = ['x', 'gamma', 'beta'];
  outputShape: number[];
  shaderKey = 'layer_norm_fused';
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
      fn rowSum(t : i32, s : f32) -> f32 {
        partial[t] = s;
        workgroupBarrier();
        for (var stride = ${WG / 2}; stride > 0; stride = stride / 2) {
          if (t < stride) { partial[t] = partial[t] + partial[t + stride]; }
          workgroupBarrier();
        }
        let total = partial[0];
        workgroupBarrier();
        return total;
      }
      fn main(unused : i32) {
        let row = i32(workgroupId.y * numWorkgroups.x + workgroupId.x);
        let t = i32(localId.x);
        let C = uniforms.C;
        let live = row < uniforms.rows;
        let base = row * C;
        var s = 0.0;
        if (live) { for (var c = t; c < C; c += ${WG}) { s += x[base + c]; } }
        let mean = rowSum(t, s) / f32(C);
        var q = 0.0;
        if (live) { for (var c = t; c < C; c += ${WG}) { let d = x[base + c] - mean; q = fma(d, d, q); } }
        let r = inverseSqrt(rowSum(t, q) / f32(C) + uniforms.eps);
        if (!live) { return; }
        for (var c = t; c < C; c += ${WG}) { result[base + c] = fma((x[base + c] - mean) * r, gamma[c], beta[c]); }
      }
    `;
  }
}
