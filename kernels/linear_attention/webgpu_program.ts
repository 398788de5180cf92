/**
 * DLA linear attention in three WGSL passes:
 *   1. DlaPartialProgram  per (token block, head): Σ kRotᵀ v and Σ k over the block's tokens
 *   2. DlaReduceProgram   per (head, entry): sums the blocks, divides by N → KV [Dk, Dv] and mean k [Dk]
 *   3. DlaOutputProgram   per output element: (qRot · KV[:, j]) / (q · mean k + eps)
 * Pass 1 bakes DK, DV and the block length (workgroup tiles; shader key); everything else is a uniform.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';

const UNIFORMS = 'N : i32, BH : i32, Dk : i32, Dv : i32, nB : i32, eps : f32,';

/** Output [BH, nB, Dk·Dv + Dk]. */
export class DlaPartialProgram implements WebGPUProgram {
  variableNames = ['k', 'kRot', 'v'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = UNIFORMS;

  constructor(BH: number, nB: number, private readonly dk: number, private readonly dv: number, private readonly block: number) {
    this.outputShape = [BH, nB, dk * dv + dk];
    this.dispatch = [nB, BH, 1];
    this.shaderKey = `dla_partial_dk${dk}_dv${dv}_b${block}`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, block: TB } = this;
    return `
      var<workgroup> ks : array<f32, ${TB * DK}>;
      var<workgroup> kr : array<f32, ${TB * DK}>;
      var<workgroup> vs : array<f32, ${TB * DV}>;
      fn main(unused : i32) {
        let blk = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let t0 = blk * ${TB};
        for (var e = i32(localIndex); e < ${TB * DK}; e += 256) {
          let t = t0 + e / ${DK};
          let inside = t < uniforms.N;
          let at = (bh * uniforms.N + min(t, uniforms.N - 1)) * ${DK} + e % ${DK};
          ks[e] = select(0.0, k[at], inside);
          kr[e] = select(0.0, kRot[at], inside);
        }
        for (var e = i32(localIndex); e < ${TB * DV}; e += 256) {
          let t = t0 + e / ${DV};
          let at = (bh * uniforms.N + min(t, uniforms.N - 1)) * ${DV} + e % ${DV};
          vs[e] = select(0.0, v[at], t < uniforms.N);
        }
        workgroupBarrier();
        let base = (bh * uniforms.nB + blk) * ${DK * DV + DK};
        for (var e = i32(localIndex); e < ${DK * DV + DK}; e += 256) {
          var s = 0.0;
          if (e < ${DK * DV}) {
            let d = e / ${DV};
            let j = e % ${DV};
            for (var t = 0; t < ${TB}; t++) { s = fma(kr[t * ${DK} + d], vs[t * ${DV} + j], s); }
          } else {
            for (var t = 0; t < ${TB}; t++) { s += ks[t * ${DK} + e - ${DK * DV}]; }
          }
          result[base + e] = s;
        }
      }
    `;
  }
}

/** Output [BH, Dk·Dv + Dk]: KV / N then mean k. */
export class DlaReduceProgram implements WebGPUProgram {
  variableNames = ['part'];
  outputShape: number[];
  shaderKey = 'dla_reduce';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = UNIFORMS;

  constructor(BH: number, width: number) {
    this.outputShape = [BH, width];
    this.dispatch = flatDispatch(BH * width, 64);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        let width = uniforms.Dk * uniforms.Dv + uniforms.Dk;
        if (index >= uniforms.BH * width) { return; }
        let bh = index / width;
        let e = index % width;
        var s = 0.0;
        for (var b = 0; b < uniforms.nB; b++) { s += part[(bh * uniforms.nB + b) * width + e]; }
        result[index] = s / f32(uniforms.N);
      }
    `;
  }
}

/** Output [B, H, N, Dv]. */
export class DlaOutputProgram implements WebGPUProgram {
  variableNames = ['q', 'qRot', 'kv'];
  outputShape: number[];
  shaderKey = 'dla_output';
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [128, 1, 1];
  uniforms = UNIFORMS;
  size = true;

  constructor(outShape: number[]) {
    this.outputShape = outShape;
    this.dispatchLayout = { x: outShape.map((_, i) => i) };
    this.dispatch = flatDispatch(outShape.reduce((a, b) => a * b, 1), 128);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let Dk = uniforms.Dk;
        let Dv = uniforms.Dv;
        let j = index % Dv;
        let row = index / Dv;                     // bh * N + n
        let bh = row / uniforms.N;
        let kvBase = bh * (Dk * Dv + Dk);
        var num = 0.0;
        var den = 0.0;
        for (var d = 0; d < Dk; d++) {
          num = fma(qRot[row * Dk + d], kv[kvBase + d * Dv + j], num);
          den = fma(q[row * Dk + d], kv[kvBase + Dk * Dv + d], den);
        }
        result[index] = num / (den + uniforms.eps);
      }
    `;
  }
}
