/**
 * One GLA scan as a recurrent WGSL kernel: one invocation per (batch·head, value column j) keeps the
 * j-th column of the d_k × d_v state in registers and walks the sequence (forward or reverse); no
 * barriers, no shared memory. Dk sizes the private state array, so it is part of the shader key; T,
 * H·B and Dv are uniforms. Output = acc + scale · q_t · S_t.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';

export class GlaScanProgram implements WebGPUProgram {
  variableNames = ['q', 'k', 'v', 'g', 'acc'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = 'T : i32, BH : i32, Dv : i32, reverse : i32, scale : f32,';
  size = false;

  constructor(
    outShape: number[],
    private readonly dk: number,
  ) {
    this.outputShape = outShape;
    this.shaderKey = `gla_scan_dk${dk}`;
    this.dispatchLayout = { x: [0] };
    this.dispatch = flatDispatch(outShape[0]! * outShape[1]! * outShape[3]!, this.workgroupSize[0]);
  }

  getUserCode(): string {
    const dk = this.dk;
    return `
      fn main(id : i32) {
        let dv = uniforms.Dv;
        if (id >= uniforms.BH * dv) { return; }
        let bh = id / dv;
        let j = id % dv;
        var s : array<f32, ${dk}>;
        for (var i = 0; i < ${dk}; i++) { s[i] = 0.0; }
        let qkBase = bh * uniforms.T * ${dk};
        let vBase = bh * uniforms.T * dv;
        for (var step = 0; step < uniforms.T; step++) {
          var t = step;
          if (uniforms.reverse == 1) { t = uniforms.T - 1 - step; }
          let row = qkBase + t * ${dk};
          let vt = f32(v[vBase + t * dv + j]);
          var o = 0.0;
          for (var i = 0; i < ${dk}; i++) {
            s[i] = exp(f32(g[row + i])) * s[i] + f32(k[row + i]) * vt;
            o = o + f32(q[row + i]) * s[i];
          }
          let at = vBase + t * dv + j;
          result[at] = f32(acc[at]) + uniforms.scale * o;
        }
      }
    `;
  }
}
