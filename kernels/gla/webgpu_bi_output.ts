/**
 * Pass 3 of the fused bidirectional GLA: per (token chunk, head), both directions, written once:
 *   O = s·Σ_dir [(Q ⊙ exp(G)) S_c + (A ⊙ M) V]   (G, S_c, A, M of that direction, in its scan order).
 * q, k and v rows are shared; each direction loads its own log-gates and entering state. Every invocation owns
 * 4 token rows x 4 value columns for both directions (register blocking; in the backward direction the same
 * token rows sit at mirrored scan positions, so the work per invocation is balanced).
 * Secondary chunking (architectures.md §1.6) with 16-row sub-chunks p and M_j = G at the last row of sub-chunk j
 * (M_{−1} = 0): the workgroup keeps QH_i = q_i ⊙ exp(G_i − M_{p(i)−1}), KH_l = k_l ⊙ exp(M_{r(l)} − G_l) and
 * W_{r,p} = exp(M_{p−1} − M_r) (all exponents ≤ 0), so that
 *   earlier sub-chunk r < p:  A_il = Σ_d QH_id · KH_ld · W_{r,p,d}   (bounded factors; no exp in the loop)
 *   inter-chunk:              q_i ⊙ exp(G_i) = QH_i ⊙ W_{−1,p}
 *   same sub-chunk (l ≤ i):   A_il = Σ_d q_id k_ld exp(G_id − G_ld), exactly, once per chunk.
 * Then O accumulates over K-tiles staged in workgroup memory: S_c (DK rows), and for each key sub-chunk r the
 * tile Aᵀ[l ∈ r, all i] with V[l ∈ r].
 * G is kept in base 2 (log2 α summed), so each exponential is one exp2.
 * DK, DV, C are baked and named in the shader key; T, BH, nC, scale are uniforms.
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';
import { GLA_SCAN_SEG } from './webgpu_bi_state.ts';

const SUB = 16;

/** Floats of workgroup memory the output program needs (for choosing the chunk). */
export function glaBiOutputSharedFloats(dk: number, dv: number, chunk: number): number {
  const n = chunk / SUB;
  const stage = Math.max(chunk * dk, dk * dv, SUB * (chunk + dv));
  return 2 * chunk * dk + stage + n * SUB * SUB + (chunk / GLA_SCAN_SEG) * dk + ((n * (n + 1)) / 2) * dk;
}

/** Invocations per workgroup: one per (4 token rows, 4 value columns). */
export function glaBiOutputInvocations(dv: number, chunk: number): number {
  return (chunk / 4) * (dv / 4);
}

export class GlaBiOutputProgram implements WebGPUProgram {
  variableNames = ['q', 'k', 'v', 'gf', 'gb', 's'];
  variableComponents = [4, 4, 4, 4, 4, 4];
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
    this.workgroupSize = [glaBiOutputInvocations(dv, chunk), 1, 1];
    this.dispatch = [nC, outShape[0]! * outShape[1]!, 1];
    this.shaderKey = `gla_bi_out_dk${dk}_dv${dv}_c${chunk}_sub${SUB}_seg${GLA_SCAN_SEG}_v4`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const [DK4, DV4, SEG] = [DK / 4, DV / 4, GLA_SCAN_SEG];
    const n = C / SUB;
    const NSEG = C / SEG;
    const NRB = C / 4; // row blocks of 4
    const STG = Math.max(C * DK4, DK * DV4, 4 * C + SUB * DV4); // vec4s
    return `
      const WG = ${NRB * DV4};
      var<workgroup> qs : array<vec4<f32>, ${C * DK4}>;  // q, then QH (rows in scan order)
      var<workgroup> ks : array<vec4<f32>, ${C * DK4}>;  // k, then KH
      // G (scan order); then S_c [DK, DV]; then Aᵀ_r [16, C] followed by V_r [16, DV]
      var<workgroup> st : array<vec4<f32>, ${STG}>;
      var<workgroup> ad : array<f32, ${n * SUB * SUB}>;  // same-sub-chunk A, [p][l][i], l ≤ i
      var<workgroup> sg : array<vec4<f32>, ${NSEG * DK4}>;
      var<workgroup> ew : array<vec4<f32>, ${((n * (n + 1)) / 2) * DK4}>; // W_{r,p}, r = −1..p−1
      fn main(unused : i32) {
        let li = i32(localIndex);
        let c = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let t0 = c * ${C};
        let rb = li / ${DV4};
        let cg = li % ${DV4};
        var o0 = vec4<f32>(0.0);
        var o1 = vec4<f32>(0.0);
        var o2 = vec4<f32>(0.0);
        var o3 = vec4<f32>(0.0);
        for (var dir = 0; dir < 2; dir++) {
          ${this.direction()}
        }
        var out = array<vec4<f32>, 4>(o0, o1, o2, o3);
        for (var j = 0; j < 4; j++) {
          let t = t0 + rb * 4 + j;
          if (t < uniforms.T) { result[(bh * uniforms.T + t) * ${DV4} + cg] = uniforms.scale * out[j]; }
        }
      }
    `;
  }

  /** WGSL for one direction (dir 0 forward, 1 backward), accumulating into o0..o3 (token rows 4·rb + j). */
  private direction(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const [DK4, DV4, SEG] = [DK / 4, DV / 4, GLA_SCAN_SEG];
    const n = C / SUB;
    const NSEG = C / SEG;
    const NRB = C / 4;
    const tok = (s: string) => `select(${s}, ${C - 1} - (${s}), dir == 1)`; // token row of scan position s
    // the invocation's token rows 4·rb + j are scan rows 4·srb + j (forward) or 4·srb + 3 − j (backward)
    const srb = `select(rb, ${NRB - 1} - rb, dir == 1)`;
    // a holds 4 scan rows: reversed, its lanes line up with the invocation's token rows
    const acc4 = (a: string, x: string) => `{ let ar = select(${a}, ${a}.wzyx, dir == 1); ${[0, 1, 2, 3].map((j) => `o${j} = fma(vec4<f32>(ar.${'xyzw'[j]}), ${x}, o${j});`).join(' ')} }`;
    return `
        {
        for (var e = li; e < ${C * DK4}; e += WG) {
          let t = t0 + ${tok(`e / ${DK4}`)};
          var qv = vec4<f32>(0.0);
          var kv = vec4<f32>(0.0);
          var gv = vec4<f32>(0.0);
          if (t < uniforms.T) {
            let at = (bh * uniforms.T + t) * ${DK4} + e % ${DK4};
            qv = q[at];
            kv = k[at];
            if (dir == 1) { gv = gb[at]; } else { gv = gf[at]; }
          }
          qs[e] = qv;
          ks[e] = kv;
          st[e] = gv * ${Math.LOG2E}; // log2 of the gates: every exp below is an exp2
        }
        workgroupBarrier();
        // G: inclusive cumsum of the log-gates over scan positions
${gateCumsumWgsl('st', 'sg', C, DK4, SEG)}        workgroupBarrier();
        // same-sub-chunk entries, exact in log space: ${n} triangles of 136, packed densely over the invocations
        for (var e = li; e < ${n * 136}; e += WG) {
          let p = e / 136;
          let kk = e % 136;
          var i = i32((sqrt(f32(8 * kk + 1)) - 1.0) * 0.5);
          if ((i + 1) * (i + 2) / 2 <= kk) { i++; }
          if (i * (i + 1) / 2 > kk) { i--; }
          let l = kk - i * (i + 1) / 2;
          let si = (p * ${SUB} + i) * ${DK4};
          let sl = (p * ${SUB} + l) * ${DK4};
          var a = 0.0;
          for (var x = 0; x < ${DK4}; x++) {
            let d4 = (x + l) % ${DK4}; // lanes start at different columns: fewer bank conflicts
            a += dot(qs[si + d4] * ks[sl + d4], exp2(st[si + d4] - st[sl + d4]));
          }
          ad[(p * ${SUB} + l) * ${SUB} + i] = a;
        }
        // W_{r,p} = exp(M_{p−1} − M_r) for r = −1..p−1 (M_{−1} = 0): entry p(p+1)/2 + r + 1
        for (var e = li; e < ${((n * (n + 1)) / 2) * DK4}; e += WG) {
          let w = e / ${DK4};
          let d4 = e % ${DK4};
          var p = 0;
          for (var x = 1; x < ${n}; x++) { if (x * (x + 1) / 2 <= w) { p = x; } }
          let r = w - p * (p + 1) / 2 - 1;
          var mp = vec4<f32>(0.0);
          var mr = vec4<f32>(0.0);
          if (p > 0) { mp = st[(p * ${SUB} - 1) * ${DK4} + d4]; }
          if (r >= 0) { mr = st[(r * ${SUB} + ${SUB - 1}) * ${DK4} + d4]; }
          ew[e] = exp2(mp - mr);
        }
        workgroupBarrier();
        // QH and KH in place
        for (var e = li; e < ${C * DK4}; e += WG) {
          let d4 = e % ${DK4};
          let p = (e / ${DK4}) / ${SUB};
          var mp = vec4<f32>(0.0);
          if (p > 0) { mp = st[(p * ${SUB} - 1) * ${DK4} + d4]; }
          let mr = st[(p * ${SUB} + ${SUB - 1}) * ${DK4} + d4];
          qs[e] = qs[e] * exp2(st[e] - mp);
          ks[e] = ks[e] * exp2(mr - st[e]);
        }
        workgroupBarrier();
        // inter-chunk: the entering state of this direction (scan chunk nC − 1 − c backward)
        let sBase = ((dir * uniforms.BH + bh) * uniforms.nC + select(c, uniforms.nC - 1 - c, dir == 1)) * ${DK * DV4};
        for (var e = li; e < ${DK * DV4}; e += WG) { st[e] = s[sBase + e]; }
        workgroupBarrier();
        let srb = ${srb};
        let p = srb / 4;
        let eBase = (p * (p + 1) / 2) * ${DK4};
        for (var d4 = 0; d4 < ${DK4}; d4++) {
          let w = ew[eBase + d4];
          let q0 = qs[(srb * 4) * ${DK4} + d4] * w;
          let q1 = qs[(srb * 4 + 1) * ${DK4} + d4] * w;
          let q2 = qs[(srb * 4 + 2) * ${DK4} + d4] * w;
          let q3 = qs[(srb * 4 + 3) * ${DK4} + d4] * w;
          for (var m = 0; m < 4; m++) {
            let sv = st[(d4 * 4 + m) * ${DV4} + cg];
            let qm = vec4<f32>(q0[m], q1[m], q2[m], q3[m]);
            ${acc4('qm', 'sv')}
          }
        }
        workgroupBarrier();
        // intra-chunk, one key sub-chunk r at a time: stage Aᵀ_r (rows of sub-chunks ≥ r) and V_r
        for (var r = 0; r < ${n}; r++) {
          let nI4 = ${NRB} - r * 4;
          for (var e = li; e < ${SUB} * nI4; e += WG) {
            let l = e / nI4;
            let i4 = r * 4 + e % nI4;
            let pi = i4 / 4;
            var a = vec4<f32>(0.0);
            if (pi == r) {
              let il = (i4 % 4) * 4;
              let b = (r * ${SUB} + l) * ${SUB} + il;
              a = vec4<f32>(select(0.0, ad[b], l <= il), select(0.0, ad[b + 1], l <= il + 1), select(0.0, ad[b + 2], l <= il + 2), select(0.0, ad[b + 3], l <= il + 3));
            } else {
              let wb = (pi * (pi + 1) / 2 + r + 1) * ${DK4};
              let kb = (r * ${SUB} + l) * ${DK4};
              let qb = i4 * 4 * ${DK4};
              for (var x = 0; x < ${DK4}; x++) {
                let d4 = (x + i4) % ${DK4}; // lanes start at different columns: fewer bank conflicts
                let kw = ks[kb + d4] * ew[wb + d4];
                a += vec4<f32>(dot(qs[qb + d4], kw), dot(qs[qb + ${DK4} + d4], kw), dot(qs[qb + ${2 * DK4} + d4], kw), dot(qs[qb + ${3 * DK4} + d4], kw));
              }
            }
            st[l * ${NRB} + i4] = a;
          }
          for (var e = li; e < ${SUB * DV4}; e += WG) {
            let t = t0 + ${tok(`r * ${SUB} + e / ${DV4}`)};
            var vv = vec4<f32>(0.0);
            if (t < uniforms.T) { vv = v[(bh * uniforms.T + t) * ${DV4} + e % ${DV4}]; }
            st[${4 * C} + e] = vv;
          }
          workgroupBarrier();
          if (p >= r) {
            for (var l = 0; l < ${SUB}; l++) {
              let a = st[l * ${NRB} + srb];
              let vv = st[${4 * C} + l * ${DV4} + cg];
              ${acc4('a', 'vv')}
            }
          }
          workgroupBarrier();
        }
        }`;
  }
}

/**
 * WGSL: inclusive cumsum down the C rows of `arr` (C × DK4 vec4s in workgroup memory): each segment of `seg` rows
 * by its own invocation, the segment totals into `totals`, then the earlier segments' totals added to each row.
 * `li` and `WG` must be in scope; ends after the last loop, without a barrier.
 */
export function gateCumsumWgsl(arr: string, totals: string, C: number, DK4: number, seg: number): string {
  return `
        for (var task = li; task < ${(C / seg) * DK4}; task += WG) {
          let g0 = (task / ${DK4}) * ${seg};
          let d4 = task % ${DK4};
          var run = vec4<f32>(0.0);
          for (var sp = g0; sp < g0 + ${seg}; sp++) {
            run += ${arr}[sp * ${DK4} + d4];
            ${arr}[sp * ${DK4} + d4] = run;
          }
          ${totals}[task] = run;
        }
        workgroupBarrier();
        for (var e = li; e < ${C * DK4}; e += WG) {
          var add = vec4<f32>(0.0);
          for (var x = 0; x < (e / ${DK4}) / ${seg}; x++) { add += ${totals}[x * ${DK4} + e % ${DK4}]; }
          ${arr}[e] += add;
        }
`;
}
