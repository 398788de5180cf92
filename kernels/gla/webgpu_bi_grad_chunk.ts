/**
 * Pass 3 of the BiGLA backward (backward.ts): per (token chunk, head), both directions, the gradients of q, k, v
 * and each direction's gate term z = q ⊙ dq − k ⊙ dk summed over the rest of its chunk. For one direction, in its
 * scan order (positions i, l), with G the in-chunk inclusive cumsum of log-gates, S the forward state entering the
 * chunk, R the reverse state entering it from the other side (webgpu_bi_grad_state.ts), P_il = dy_i · v_l and
 * A_il = Σ_d q_id k_ld exp(G_id − G_ld) for l ≤ i:
 *   dq_i = s·[exp(G_i) ⊙ (S dy_iᵀ) + Σ_{l≤i} P_il k_l ⊙ exp(G_i − G_l)]
 *   dk_l = s·[exp(G_end − G_l) ⊙ (R v_lᵀ) + Σ_{i≥l} P_il q_i ⊙ exp(G_i − G_l)]
 *   dv_l = s·[(k_l ⊙ exp(G_end − G_l)) R + Σ_{i≥l} A_il dy_i]
 * The log-gate gradient of the direction is Σ over scan positions at or after l of z (its cumsum G_t enters
 * exp(G_t − G_j) with + for the query side and − for the key side, and g_l is inside every G_t with t ≥ l).
 * Every exponent is a difference of in-chunk sums with the later position first (≤ 0), computed exactly per
 * channel: the same log-space rule as the forward, so steep decays cannot overflow.
 * One packed output (vec4 units): dq, dk [BH, T, DK]; dv [BH, T, DV]; then z's in-chunk suffix sums for the
 * forward and the backward direction [2, BH, T, DK]. Each invocation owns the same token rows in both
 * directions and keeps their dq, dk, dv in registers.
 * With one direction (`dirs` 'fwd' or 'bwd', for GatedLinearAttention) the states are [2·BH, ...] (S, then R)
 * and the output holds that direction's z only.
 * DK, DV, C and the directions are baked and named in the shader key; T, BH, nC and scale are uniforms.
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';
import { gateCumsumWgsl } from './webgpu_bi_output.ts';

const WG = 256;
/** Rows per segment of the in-workgroup two-level scans (C is 16 or 32). */
export const GLA_GRAD_SEG = 4;
const SEG = GLA_GRAD_SEG;

/** Which scans the backward covers: BiGLA's two, or one (GatedLinearAttention, forward or reverse). */
export type GlaGradDirs = 'both' | 'fwd' | 'bwd';

/** Floats of workgroup memory the program needs (for choosing the chunk). */
export function glaBiGradSharedFloats(dk: number, dv: number, chunk: number): number {
  return 4 * chunk * dk + 2 * chunk * dv + dk * dv + 2 * chunk * chunk;
}

export class GlaBiGradChunkProgram implements WebGPUProgram {
  variableNames = ['q', 'k', 'v', 'dy', 'gf', 'gb', 'states'];
  variableComponents = [4, 4, 4, 4, 4, 4, 4];
  outputComponent = 4;
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'T : i32, BH : i32, nC : i32, reverse : i32, scale : f32,';

  constructor(
    BH: number,
    T: number,
    nC: number,
    private readonly dk: number,
    private readonly dv: number,
    private readonly chunk: number,
    private readonly dirs: GlaGradDirs = 'both',
  ) {
    this.outputShape = [BH * T * ((dirs === 'both' ? 4 : 3) * dk + dv)];
    this.dispatch = [nC, BH, 1];
    this.shaderKey = `gla_bi_grad_chunk_dk${dk}_dv${dv}_c${chunk}_wg${WG}_seg${SEG}_${dirs}`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const [DK4, DV4] = [DK / 4, DV / 4];
    const NQ = Math.ceil((C * DK4) / WG);
    const NV = Math.ceil((C * DV4) / WG);
    const NSEG = C / SEG;
    const both = this.dirs === 'both';
    // the scan position of token row x in direction dir, and back (the map is its own inverse)
    const tok = (x: string) => `select(${x}, ${C - 1} - (${x}), dir == 1)`;
    const sRow = (d: string, e: string) => `sw[(${d}) * ${DV4} + ${e}]`;
    return `
      const WG = ${WG};
      var<workgroup> qw : array<vec4<f32>, ${C * DK4}>; // scan order; at the end q ⊙ dq − k ⊙ dk
      var<workgroup> kw : array<vec4<f32>, ${C * DK4}>;
      var<workgroup> gw : array<vec4<f32>, ${C * DK4}>; // log2-gates, then their inclusive cumsum G
      var<workgroup> zw : array<vec4<f32>, ${C * DK4}>; // k ⊙ exp(G_end − G)
      var<workgroup> vw : array<vec4<f32>, ${C * DV4}>; // token order
      var<workgroup> yw : array<vec4<f32>, ${C * DV4}>; // dy, token order
      var<workgroup> sw : array<vec4<f32>, ${DK * DV4}>; // S, then R: [DK, DV]
      var<workgroup> pw : array<f32, ${C * C}>; // P[token i][token l]
      var<workgroup> aw : array<f32, ${C * C}>; // A[i][l], scan order, l ≤ i
      fn main(unused : i32) {
        let li = i32(localIndex);
        let c = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let t0 = c * ${C};
        let n4k = uniforms.BH * uniforms.T * ${DK4};
        let n4v = uniforms.BH * uniforms.T * ${DV4};
        var aq : array<vec4<f32>, ${NQ}>;
        var ak : array<vec4<f32>, ${NQ}>;
        var av : array<vec4<f32>, ${NV}>;
        var zq : array<vec4<f32>, ${NQ}>;
        for (var e = li; e < ${C * DV4}; e += WG) {
          let t = t0 + e / ${DV4};
          var vv = vec4<f32>(0.0);
          var yv = vec4<f32>(0.0);
          if (t < uniforms.T) {
            let at = (bh * uniforms.T + t) * ${DV4} + e % ${DV4};
            vv = v[at];
            yv = dy[at];
          }
          vw[e] = vv;
          yw[e] = yv;
        }
        workgroupBarrier();
        for (var e = li; e < ${C * C}; e += WG) {
          let ti = e / ${C};
          let tl = e % ${C};
          var a = 0.0;
          for (var x = 0; x < ${DV4}; x++) {
            let xx = (x + tl) % ${DV4}; // lanes start at different columns: fewer bank conflicts
            a += dot(yw[ti * ${DV4} + xx], vw[tl * ${DV4} + xx]);
          }
          pw[e] = a;
        }
        for (var dir = ${this.dirs === 'bwd' ? 1 : 0}; dir < ${this.dirs === 'fwd' ? 1 : 2}; dir++) {
          workgroupBarrier();
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
            qw[e] = qv;
            kw[e] = kv;
            gw[e] = gv * ${Math.LOG2E}; // base 2: every exp below is one exp2
          }
          workgroupBarrier();
          // G: inclusive cumsum of the log-gates over scan positions (segment totals in zw, free until k is decayed)
${gateCumsumWgsl('gw', 'zw', C, DK4, SEG)}          let sBase = ((${both ? 'dir' : '0'} * uniforms.BH + bh) * uniforms.nC + select(c, uniforms.nC - 1 - c, dir == 1)) * ${DK * DV4};
          for (var e = li; e < ${DK * DV4}; e += WG) { sw[e] = states[sBase + e]; }
          workgroupBarrier();
          // A on the lower triangle only (the rest is never read), packed densely over the invocations
          for (var e = li; e < ${(C * (C + 1)) / 2}; e += WG) {
            var i = i32((sqrt(f32(8 * e + 1)) - 1.0) * 0.5);
            if ((i + 1) * (i + 2) / 2 <= e) { i++; }
            if (i * (i + 1) / 2 > e) { i--; }
            let l = e - i * (i + 1) / 2;
            var a = 0.0;
            for (var x = 0; x < ${DK4}; x++) {
              let xx = (x + l) % ${DK4};
              a += dot(qw[i * ${DK4} + xx] * kw[l * ${DK4} + xx], exp2(gw[i * ${DK4} + xx] - gw[l * ${DK4} + xx]));
            }
            aw[i * ${C} + l] = a;
          }
          for (var e = li; e < ${C * DK4}; e += WG) { zw[e] = kw[e] * exp2(gw[${(C - 1) * DK4} + e % ${DK4}] - gw[e]); }
          for (var u = 0; u < ${NQ}; u++) {
            let task = li + u * WG;
            if (task < ${C * DK4}) {
              let tr = task / ${DK4};
              let d4 = task % ${DK4};
              let i = ${tok('tr')};
              let gi = gw[i * ${DK4} + d4];
              var inter = vec4<f32>(0.0);
              for (var x = 0; x < ${DV4}; x++) {
                let e4 = (x + d4) % ${DV4};
                let y = yw[tr * ${DV4} + e4];
                inter += vec4<f32>(dot(${sRow('d4 * 4', 'e4')}, y), dot(${sRow('d4 * 4 + 1', 'e4')}, y), dot(${sRow('d4 * 4 + 2', 'e4')}, y), dot(${sRow('d4 * 4 + 3', 'e4')}, y));
              }
              var intra = vec4<f32>(0.0);
              for (var l = 0; l <= i; l++) {
                intra += pw[tr * ${C} + ${tok('l')}] * kw[l * ${DK4} + d4] * exp2(gi - gw[l * ${DK4} + d4]);
              }
              let dq = uniforms.scale * (exp2(gi) * inter + intra);
              aq[u] += dq;
              zq[u] = qw[i * ${DK4} + d4] * dq;
            }
          }
          workgroupBarrier();
          let rBase = ((${both ? '(2 + dir)' : '1'} * uniforms.BH + bh) * uniforms.nC + select(uniforms.nC - 1 - c, c, dir == 1)) * ${DK * DV4};
          for (var e = li; e < ${DK * DV4}; e += WG) { sw[e] = states[rBase + e]; }
          workgroupBarrier();
          for (var u = 0; u < ${NQ}; u++) {
            let task = li + u * WG;
            if (task < ${C * DK4}) {
              let tr = task / ${DK4};
              let d4 = task % ${DK4};
              let i = ${tok('tr')};
              let gi = gw[i * ${DK4} + d4];
              var inter = vec4<f32>(0.0);
              for (var x4 = 0; x4 < ${DV4}; x4++) {
                let e4 = (x4 + d4) % ${DV4};
                let x = vw[tr * ${DV4} + e4];
                inter += vec4<f32>(dot(${sRow('d4 * 4', 'e4')}, x), dot(${sRow('d4 * 4 + 1', 'e4')}, x), dot(${sRow('d4 * 4 + 2', 'e4')}, x), dot(${sRow('d4 * 4 + 3', 'e4')}, x));
              }
              var intra = vec4<f32>(0.0);
              for (var j = i; j < ${C}; j++) {
                intra += pw[${tok('j')} * ${C} + tr] * qw[j * ${DK4} + d4] * exp2(gw[j * ${DK4} + d4] - gi);
              }
              let dk = uniforms.scale * (exp2(gw[${(C - 1) * DK4} + d4] - gi) * inter + intra);
              ak[u] += dk;
              zq[u] -= kw[i * ${DK4} + d4] * dk;
            }
          }
          ${this.dvTerms()}
          workgroupBarrier();
          // z summed from each scan position to the chunk's end, written per token; qw is free now
          for (var u = 0; u < ${NQ}; u++) {
            let task = li + u * WG;
            if (task < ${C * DK4}) { qw[${tok(`task / ${DK4}`)} * ${DK4} + task % ${DK4}] = zq[u]; }
          }
          workgroupBarrier();
          // within segments of ${SEG} from the end (totals in zw, free now), then the later segments' totals
          for (var task = li; task < ${NSEG * DK4}; task += WG) {
            let g0 = (task / ${DK4}) * ${SEG};
            let d4 = task % ${DK4};
            var run = vec4<f32>(0.0);
            for (var sp = g0 + ${SEG - 1}; sp >= g0; sp--) {
              run += qw[sp * ${DK4} + d4];
              qw[sp * ${DK4} + d4] = run;
            }
            zw[task] = run;
          }
          workgroupBarrier();
          let zBase = 2 * n4k + n4v${both ? ' + dir * n4k' : ''};
          for (var e = li; e < ${C * DK4}; e += WG) {
            let sp = e / ${DK4};
            let d4 = e % ${DK4};
            var add = vec4<f32>(0.0);
            for (var x = sp / ${SEG} + 1; x < ${NSEG}; x++) { add += zw[x * ${DK4} + d4]; }
            let t = t0 + ${tok('sp')};
            if (t < uniforms.T) { result[zBase + (bh * uniforms.T + t) * ${DK4} + d4] = qw[e] + add; }
          }
        }
        for (var u = 0; u < ${NQ}; u++) {
          let task = li + u * WG;
          let t = t0 + task / ${DK4};
          if (task < ${C * DK4} && t < uniforms.T) {
            let o = (bh * uniforms.T + t) * ${DK4} + task % ${DK4};
            result[o] = aq[u];
            result[n4k + o] = ak[u];
          }
        }
        for (var u = 0; u < ${NV}; u++) {
          let task = li + u * WG;
          let t = t0 + task / ${DV4};
          if (task < ${C * DV4} && t < uniforms.T) { result[2 * n4k + (bh * uniforms.T + t) * ${DV4} + task % ${DV4}] = av[u]; }
        }
      }
    `;
  }

  /**
   * WGSL for dv of one direction. When every invocation's tasks share one value column (WG a multiple of DV/4 and
   * of the task count), the R rows are loaded once for all of them.
   */
  private dvTerms(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const [DK4, DV4] = [DK / 4, DV / 4];
    const NV = Math.ceil((C * DV4) / WG);
    const tok = (x: string) => `select(${x}, ${C - 1} - (${x}), dir == 1)`;
    const sRow = (d: string, e: string) => `sw[(${d}) * ${DV4} + ${e}]`;
    const intra = (u: string, i: string, e4: string) =>
      `for (var j = ${i}; j < ${C}; j++) { acc${u} += aw[j * ${C} + ${i}] * yw[${tok('j')} * ${DV4} + ${e4}]; }`;
    if (WG % DV4 === 0 && (C * DV4) % WG === 0) {
      const us = Array.from({ length: NV }, (_, u) => u);
      return `{
          let e4 = li % ${DV4};
          ${us.map((u) => `let i${u} = ${tok(`(li + ${u * WG}) / ${DV4}`)};
          var acc${u} = vec4<f32>(0.0);`).join('\n          ')}
          for (var d4 = 0; d4 < ${DK4}; d4++) {
            let s0 = ${sRow('d4 * 4', 'e4')};
            let s1 = ${sRow('d4 * 4 + 1', 'e4')};
            let s2 = ${sRow('d4 * 4 + 2', 'e4')};
            let s3 = ${sRow('d4 * 4 + 3', 'e4')};
            ${us.map((u) => `{ let kd = zw[i${u} * ${DK4} + d4]; acc${u} += kd.x * s0 + kd.y * s1 + kd.z * s2 + kd.w * s3; }`).join('\n            ')}
          }
          ${us.map((u) => `${intra(String(u), `i${u}`, 'e4')}
          av[${u}] += uniforms.scale * acc${u};`).join('\n          ')}
          }`;
    }
    return `for (var u = 0; u < ${NV}; u++) {
            let task = li + u * WG;
            if (task < ${C * DV4}) {
              let tr = task / ${DV4};
              let e4 = task % ${DV4};
              let i = ${tok('tr')};
              var acc = vec4<f32>(0.0);
              for (var d4 = 0; d4 < ${DK4}; d4++) {
                let kd = zw[i * ${DK4} + d4];
                acc += kd.x * ${sRow('d4 * 4', 'e4')} + kd.y * ${sRow('d4 * 4 + 1', 'e4')} + kd.z * ${sRow('d4 * 4 + 2', 'e4')} + kd.w * ${sRow('d4 * 4 + 3', 'e4')};
              }
              ${intra('', 'i', 'e4')}
              av[u] += uniforms.scale * acc;
            }
          }`;
  }
}
