/**
 * Pass 3 of the chunked GLA scan: per (chunk, head), O = acc + s·[(Q ⊙ exp(G)) S_c + (A ⊙ M) V].
 * Secondary chunking (architectures.md §1.6): a key row l in an earlier 16-row sub-chunk r is stored decayed
 * to that sub-chunk's last row m (khat_l = k_l ⊙ exp(G_m − G_l), ≤ |k_l|), and the query is decayed from m
 * (q_i ⊙ exp(G_i − G_m)), so A_il is a plain dot product of bounded factors. Only the 16×16 diagonal blocks
 * are exponentiated element by element. Four invocations share a query row, each owning every fourth group
 * of four value columns. DK, DV, C are baked (shader key); T, BH, nC, reverse, scale are uniforms.
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';
import { loadCumsum } from './webgpu_chunk_programs.ts';

export class GlaChunkOutputProgram implements WebGPUProgram {
  variableNames = ['q', 'k', 'v', 'g', 's', 'acc'];
  /** v, the chunk states and acc are read as vec4 (DV is a multiple of 4); q, k, g as scalars. */
  variableComponents = [1, 1, 4, 1, 4, 4];
  outputComponent = 4;
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms = 'T : i32, BH : i32, nC : i32, reverse : i32, scale : f32,';

  constructor(
    outShape: number[],
    nC: number,
    private readonly dk: number,
    private readonly dv: number,
    private readonly chunk: number,
  ) {
    this.outputShape = outShape;
    this.workgroupSize = [4 * chunk, 1, 1];
    this.dispatch = [nC, outShape[0]! * outShape[1]!, 1];
    this.shaderKey = `gla_out_dk${dk}_dv${dv}_c${chunk}`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const DK4 = DK / 4;
    const DV4 = DV / 4;
    const NG = Math.ceil(DV4 / 4); // vec4 column groups per invocation
    return `
      fn tokenOf(p : i32) -> i32 { if (uniforms.reverse == 1) { return uniforms.T - 1 - p; } return p; }
      const WG = ${4 * C};
      var<workgroup> gsh : array<f32, ${C * DK}>;
      // raw k while khat and adiag are built, then the chunk's entering state S_c [DK, DV]
      var<workgroup> ksh : array<f32, ${Math.max(C * DK, DK * DV)}>;
      var<workgroup> khat : array<vec4<f32>, ${C * DK4}>;
      var<workgroup> adiag : array<f32, ${C * 16}>;
      fn gvec(r : i32, d4 : i32) -> vec4<f32> {
        let b = r * ${DK} + d4 * 4;
        return vec4<f32>(gsh[b], gsh[b + 1], gsh[b + 2], gsh[b + 3]);
      }
      fn main(unused : i32) {
        let c = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        ${loadCumsum(C, DK, true)}
        for (var e = i32(localIndex); e < ${C * DK4}; e += WG) {
          let r = e / ${DK4};
          let d4 = e % ${DK4};
          let m = (r / 16) * 16 + 15;
          let b = r * ${DK} + d4 * 4;
          khat[e] = vec4<f32>(ksh[b], ksh[b + 1], ksh[b + 2], ksh[b + 3]) * exp(gvec(m, d4) - gvec(r, d4));
        }
        for (var e = i32(localIndex); e < ${C * 16}; e += WG) {
          let i = e / 16;
          let l = (i / 16) * 16 + e % 16;
          let p = c * ${C} + i;
          var a = 0.0;
          if (l <= i && p < uniforms.T) {
            let qrow = (bh * uniforms.T + tokenOf(p)) * ${DK};
            for (var d = 0; d < ${DK}; d++) {
              a = fma(q[qrow + d] * ksh[l * ${DK} + d], exp(gsh[i * ${DK} + d] - gsh[l * ${DK} + d]), a);
            }
          }
          adiag[e] = a;
        }
        workgroupBarrier();
        let sBase = (bh * uniforms.nC + c) * ${DK * DV4};
        for (var e = i32(localIndex); e < ${DK * DV4}; e += WG) {
          let sv = s[sBase + e];
          ksh[e * 4] = sv.x; ksh[e * 4 + 1] = sv.y; ksh[e * 4 + 2] = sv.z; ksh[e * 4 + 3] = sv.w;
        }
        workgroupBarrier();

        let i = i32(localIndex) / 4;
        let cg = i32(localIndex) % 4;
        let p = c * ${C} + i;
        if (p >= uniforms.T) { return; }
        let row = bh * uniforms.T + tokenOf(p);
        var qv : array<vec4<f32>, ${DK4}>;
        for (var d4 = 0; d4 < ${DK4}; d4++) {
          let b = row * ${DK} + d4 * 4;
          qv[d4] = vec4<f32>(q[b], q[b + 1], q[b + 2], q[b + 3]);
        }
        var o : array<vec4<f32>, ${NG}>;
        for (var n = 0; n < ${NG}; n++) { o[n] = vec4<f32>(0.0); }
        // inter-chunk: (q ⊙ exp(G_i)) · S_c, exp(G_i) ≤ 1, S_c from workgroup memory
        for (var d4 = 0; d4 < ${DK4}; d4++) {
          let qe = qv[d4] * exp(gvec(i, d4));
          for (var lane = 0; lane < 4; lane++) {
            let srow = (d4 * 4 + lane) * ${DV};
            for (var n = 0; n < ${NG}; n++) {
              let g4 = cg + 4 * n;
              let b = srow + g4 * 4;
              if (g4 < ${DV4}) { o[n] = fma(vec4<f32>(qe[lane]), vec4<f32>(ksh[b], ksh[b + 1], ksh[b + 2], ksh[b + 3]), o[n]); }
            }
          }
        }
        // earlier sub-chunks of this chunk: bounded dot products against khat
        let sub = i / 16;
        for (var r = 0; r < sub; r++) {
          let m = r * 16 + 15;
          var qh : array<vec4<f32>, ${DK4}>;
          for (var d4 = 0; d4 < ${DK4}; d4++) { qh[d4] = qv[d4] * exp(gvec(i, d4) - gvec(m, d4)); }
          for (var l = r * 16; l <= m; l++) {
            var a = 0.0;
            for (var d4 = 0; d4 < ${DK4}; d4++) { a += dot(qh[d4], khat[l * ${DK4} + d4]); }
            let vrow = (bh * uniforms.T + tokenOf(c * ${C} + l)) * ${DV4};
            for (var n = 0; n < ${NG}; n++) {
              let g4 = cg + 4 * n;
              if (g4 < ${DV4}) { o[n] = fma(vec4<f32>(a), v[vrow + g4], o[n]); }
            }
          }
        }
        // the diagonal sub-chunk, exact in log space (adiag)
        for (var l = sub * 16; l <= i; l++) {
          let a = adiag[i * 16 + l - sub * 16];
          let vrow = (bh * uniforms.T + tokenOf(c * ${C} + l)) * ${DV4};
          for (var n = 0; n < ${NG}; n++) {
            let g4 = cg + 4 * n;
            if (g4 < ${DV4}) { o[n] = fma(vec4<f32>(a), v[vrow + g4], o[n]); }
          }
        }
        for (var n = 0; n < ${NG}; n++) {
          let g4 = cg + 4 * n;
          if (g4 < ${DV4}) {
            let at = row * ${DV4} + g4;
            result[at] = acc[at] + uniforms.scale * o[n];
          }
        }
      }
    `;
  }
}
