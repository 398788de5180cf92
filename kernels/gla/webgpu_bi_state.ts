/**
 * Pass 1 of the fused bidirectional GLA (webgpu_bi.ts): per (token chunk, head, direction), the chunk's state
 * update ΔS = (K ⊙ exp(G_end − G))ᵀ V and its decay γ = exp(G_end), where G_end − G_r is the sum of the
 * direction's log-gates over the rows after r in scan order (later tokens forward, earlier tokens backward).
 * Both directions use the same token chunks [cC, cC + C): the backward scan's padding (tokens ≥ T, g = k = v = 0)
 * comes first in its order and adds nothing. The backward result is stored at scan chunk nC − 1 − c, so the
 * two-level state scan of webgpu_chunk_programs.ts runs unchanged over 2·BH sequences.
 * Output [2·BH, nC, DK, DV + 1]: ΔS in the first DV columns, γ in the last.
 * DK, DV and C are baked (shader key); T, BH, nC are uniforms.
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';

/** Rows per segment of the in-workgroup two-level cumsum (C is a multiple of 16). */
export const GLA_SCAN_SEG = 8;

export class GlaBiStateProgram implements WebGPUProgram {
  variableNames = ['k', 'v', 'gf', 'gb'];
  variableComponents = [4, 4, 4, 4];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [128, 1, 1];
  uniforms = 'T : i32, BH : i32, nC : i32, reverse : i32, scale : f32,';

  constructor(
    BH: number,
    nC: number,
    private readonly dk: number,
    private readonly dv: number,
    private readonly chunk: number,
  ) {
    this.outputShape = [2 * BH, nC, dk, dv + 1];
    this.dispatch = [nC, BH, 2];
    this.shaderKey = `gla_bi_state_dk${dk}_dv${dv}_c${chunk}_seg${GLA_SCAN_SEG}_v4`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const [DK4, DV4, SEG] = [DK / 4, DV / 4, GLA_SCAN_SEG];
    const NSEG = C / SEG;
    return `
      const WG = 128;
      var<workgroup> kd : array<vec4<f32>, ${C * DK4}>; // log-gates, their scan, then k decayed to the chunk's end
      var<workgroup> vsh : array<vec4<f32>, ${C * DV4}>;
      var<workgroup> seg : array<vec4<f32>, ${NSEG * DK4}>;
      // scan position of token row r (within the chunk) in this direction's order
      fn scanPos(dir : i32, r : i32) -> i32 { if (dir == 1) { return ${C - 1} - r; } return r; }
      fn main(unused : i32) {
        let li = i32(localIndex);
        let c = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let dir = i32(workgroupId.z);
        let t0 = c * ${C};
        for (var e = li; e < ${C * DK4}; e += WG) {
          let t = t0 + e / ${DK4};
          var gv = vec4<f32>(0.0);
          if (t < uniforms.T) {
            let at = (bh * uniforms.T + t) * ${DK4} + e % ${DK4};
            if (dir == 1) { gv = gb[at]; } else { gv = gf[at]; }
          }
          // stored by scan position, so the scan below is the same for both directions
          kd[scanPos(dir, e / ${DK4}) * ${DK4} + e % ${DK4}] = gv * ${Math.LOG2E}; // base 2: one exp2 each
        }
        for (var e = li; e < ${C * DV4}; e += WG) {
          let t = t0 + e / ${DV4};
          var vv = vec4<f32>(0.0);
          if (t < uniforms.T) { vv = v[(bh * uniforms.T + t) * ${DV4} + e % ${DV4}]; }
          vsh[e] = vv;
        }
        workgroupBarrier();
        // exclusive suffix sums over scan positions, in segments of ${SEG}: within each segment first
        for (var task = li; task < ${NSEG * DK4}; task += WG) {
          let sg = task / ${DK4};
          let d4 = task % ${DK4};
          var run = vec4<f32>(0.0);
          for (var s = sg * ${SEG} + ${SEG - 1}; s >= sg * ${SEG}; s--) {
            let x = kd[s * ${DK4} + d4];
            kd[s * ${DK4} + d4] = run;
            run += x;
          }
          seg[task] = run;
        }
        workgroupBarrier();
        // then add the later segments' totals; every exponent is a sum of log-gates, ≤ 0
        for (var e = li; e < ${C * DK4}; e += WG) {
          let s = e / ${DK4};
          let d4 = e % ${DK4};
          var tot = kd[e];
          for (var x = s / ${SEG} + 1; x < ${NSEG}; x++) { tot += seg[x * ${DK4} + d4]; }
          let t = t0 + select(s, ${C - 1} - s, dir == 1);
          var kv = vec4<f32>(0.0);
          if (t < uniforms.T) { kv = k[(bh * uniforms.T + t) * ${DK4} + d4]; }
          kd[e] = kv * exp2(tot);
        }
        workgroupBarrier();
        // kd rows are in scan order, vsh rows in token order
        let sc = select(c, uniforms.nC - 1 - c, dir == 1);
        let base = ((dir * uniforms.BH + bh) * uniforms.nC + sc) * ${DK};
${stateBlockWgsl((r) => `kd[scanPos(dir, ${r}) * ${DK4} + d4]`, (r) => `vsh[${r} * ${DV4} + j4]`, C, DK, DV, NSEG)}      }
    `;
  }
}

/**
 * WGSL that writes one chunk's [ΔS | γ] block at `base` (rows of DV + 1 floats per key channel):
 * ΔS = Σ_r x_r ⊗ y_r over the chunk's C rows, γ = exp2 of the summed log-gate segments `seg`. `xRow(r)` and
 * `yRow(r)` are the vec4 of row r at key group d4 and value group j4; `li`, `WG`, `base` and `seg` must be in scope.
 * The forward state pass and the backward one (for the reverse-time dS) share it.
 */
export function stateBlockWgsl(xRow: (r: string) => string, yRow: (r: string) => string, C: number, DK: number, DV: number, NSEG: number): string {
  const [DK4, DV4] = [DK / 4, DV / 4];
  return `
        // task = (4 key channels, 4 value columns): two loads feed 16 accumulators
        for (var task = li; task < ${DK4 * DV4}; task += WG) {
          let d4 = task / ${DV4};
          let j4 = task % ${DV4};
          var a0 = vec4<f32>(0.0);
          var a1 = vec4<f32>(0.0);
          var a2 = vec4<f32>(0.0);
          var a3 = vec4<f32>(0.0);
          for (var r = 0; r < ${C}; r++) {
            let xv = ${xRow('r')};
            let yv = ${yRow('r')};
            a0 = fma(vec4<f32>(xv.x), yv, a0);
            a1 = fma(vec4<f32>(xv.y), yv, a1);
            a2 = fma(vec4<f32>(xv.z), yv, a2);
            a3 = fma(vec4<f32>(xv.w), yv, a3);
          }
          let o = (base + d4 * 4) * ${DV + 1} + j4 * 4;
          result[o] = a0.x; result[o + 1] = a0.y; result[o + 2] = a0.z; result[o + 3] = a0.w;
          let o1 = o + ${DV + 1};
          result[o1] = a1.x; result[o1 + 1] = a1.y; result[o1 + 2] = a1.z; result[o1 + 3] = a1.w;
          let o2 = o1 + ${DV + 1};
          result[o2] = a2.x; result[o2 + 1] = a2.y; result[o2 + 2] = a2.z; result[o2 + 3] = a2.w;
          let o3 = o2 + ${DV + 1};
          result[o3] = a3.x; result[o3 + 1] = a3.y; result[o3 + 2] = a3.z; result[o3 + 3] = a3.w;
        }
        // γ = exp(sum of the chunk's log-gates): the suffix sum before scan position 0 plus its own gate
        for (var d4 = li; d4 < ${DK4}; d4 += WG) {
          var tot = vec4<f32>(0.0);
          for (var x = 0; x < ${NSEG}; x++) { tot += seg[x * ${DK4} + d4]; }
          let gam = exp2(tot);
          let o = (base + d4 * 4) * ${DV + 1} + ${DV};
          result[o] = gam.x; result[o + ${DV + 1}] = gam.y; result[o + ${2 * (DV + 1)}] = gam.z; result[o + ${3 * (DV + 1)}] = gam.w;
        }
`;
}
