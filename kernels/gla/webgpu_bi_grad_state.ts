/**
 * Pass 1 of the BiGLA backward (webgpu_bi_grad.ts): per (token chunk, head, z), z = 2·kind + dir, the chunk's
 * contribution to one of four state scans, so a single two-level scan (GlaStateScanProgram over 4·BH sequences)
 * gives every state the backward needs:
 *   kind 0, forward states (as GlaBiStateProgram):  ΔS = (K ⊙ exp(G_end − G))ᵀ V, in the direction's scan order;
 *   kind 1, reverse "dS" states, walked the other way:  ΔR = (Q ⊙ exp(G))ᵀ dY,
 * where G is the direction's in-chunk inclusive cumsum of log-gates in its scan order (so every exponent is a
 * sum of log-gates, ≤ 0) and γ = exp(G_end) for both. R entering a chunk is Σ over the chunks after it (in the
 * direction's scan order) of diag(exp(G_t − G_end)) q_tᵀ dy_t, the adjoint of the forward state at the chunk's end.
 * Sequence z·BH + bh (with one direction, `dirs` 'fwd' or 'bwd': z = kind, 2·BH sequences); kind 0 stores chunk c at its scan position (nC − 1 − c backward), kind 1 at the reverse of
 * it, so the scan always runs from where the state starts.
 * Output [4·BH, nC, DK, DV + 1]: ΔS or ΔR in the first DV columns, γ in the last.
 * DK, DV and C are baked (shader key); T, BH, nC are uniforms.
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';
import { stateBlockWgsl } from './webgpu_bi_state.ts';
import { GLA_GRAD_SEG as SEG, type GlaGradDirs } from './webgpu_bi_grad_chunk.ts';

export class GlaBiGradStateProgram implements WebGPUProgram {
  variableNames = ['q', 'k', 'v', 'dy', 'gf', 'gb'];
  variableComponents = [4, 4, 4, 4, 4, 4];
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
    private readonly dirs: GlaGradDirs = 'both',
  ) {
    const n = dirs === 'both' ? 4 : 2;
    this.outputShape = [n * BH, nC, dk, dv + 1];
    this.dispatch = [nC, BH, n];
    this.shaderKey = `gla_bi_grad_state_dk${dk}_dv${dv}_c${chunk}_seg${SEG}_${dirs}`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const [DK4, DV4] = [DK / 4, DV / 4];
    const NSEG = C / SEG;
    return `
      const WG = 128;
      var<workgroup> xs : array<vec4<f32>, ${C * DK4}>; // log2-gates, their sums, then k or q weighted (scan order)
      var<workgroup> ys : array<vec4<f32>, ${C * DV4}>; // v or dy (token order)
      var<workgroup> seg : array<vec4<f32>, ${NSEG * DK4}>;
      fn main(unused : i32) {
        let li = i32(localIndex);
        let c = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        let dir = ${this.dirs === 'both' ? 'i32(workgroupId.z) % 2' : this.dirs === 'fwd' ? '0' : '1'};
        let kind = ${this.dirs === 'both' ? 'i32(workgroupId.z) / 2' : 'i32(workgroupId.z)'};
        let t0 = c * ${C};
        for (var e = li; e < ${C * DK4}; e += WG) {
          let t = t0 + select(e / ${DK4}, ${C - 1} - e / ${DK4}, dir == 1);
          var gv = vec4<f32>(0.0);
          if (t < uniforms.T) {
            let at = (bh * uniforms.T + t) * ${DK4} + e % ${DK4};
            if (dir == 1) { gv = gb[at]; } else { gv = gf[at]; }
          }
          xs[e] = gv * ${Math.LOG2E}; // base 2: one exp2 each
        }
        for (var e = li; e < ${C * DV4}; e += WG) {
          let t = t0 + e / ${DV4};
          var yv = vec4<f32>(0.0);
          if (t < uniforms.T) {
            let at = (bh * uniforms.T + t) * ${DV4} + e % ${DV4};
            if (kind == 1) { yv = dy[at]; } else { yv = v[at]; }
          }
          ys[e] = yv;
        }
        workgroupBarrier();
        // kind 0: exclusive suffix sums (G_end − G_s); kind 1: inclusive prefix sums (G_s). Within segments of ${SEG}
        // first, then the other segments' totals
        for (var task = li; task < ${NSEG * DK4}; task += WG) {
          let g0 = (task / ${DK4}) * ${SEG};
          let d4 = task % ${DK4};
          var run = vec4<f32>(0.0);
          if (kind == 0) {
            for (var s = g0 + ${SEG - 1}; s >= g0; s--) {
              let x = xs[s * ${DK4} + d4];
              xs[s * ${DK4} + d4] = run;
              run += x;
            }
          } else {
            for (var s = g0; s < g0 + ${SEG}; s++) {
              run += xs[s * ${DK4} + d4];
              xs[s * ${DK4} + d4] = run;
            }
          }
          seg[task] = run;
        }
        workgroupBarrier();
        for (var e = li; e < ${C * DK4}; e += WG) {
          let sg = (e / ${DK4}) / ${SEG};
          let d4 = e % ${DK4};
          var add = vec4<f32>(0.0);
          if (kind == 0) {
            for (var x = sg + 1; x < ${NSEG}; x++) { add += seg[x * ${DK4} + d4]; }
          } else {
            for (var x = 0; x < sg; x++) { add += seg[x * ${DK4} + d4]; }
          }
          xs[e] += add;
        }
        workgroupBarrier();
        for (var e = li; e < ${C * DK4}; e += WG) {
          let t = t0 + select(e / ${DK4}, ${C - 1} - e / ${DK4}, dir == 1);
          var xv = vec4<f32>(0.0);
          if (t < uniforms.T) {
            let at = (bh * uniforms.T + t) * ${DK4} + e % ${DK4};
            if (kind == 1) { xv = q[at]; } else { xv = k[at]; }
          }
          xs[e] = xv * exp2(xs[e]);
        }
        workgroupBarrier();
        let sc = select(c, uniforms.nC - 1 - c, dir != kind);
        let base = ((i32(workgroupId.z) * uniforms.BH + bh) * uniforms.nC + sc) * ${DK};
${stateBlockWgsl((r) => `xs[select(${r}, ${C - 1} - ${r}, dir == 1) * ${DK4} + d4]`, (r) => `ys[${r} * ${DV4} + j4]`, C, DK, DV, NSEG)}      }
    `;
  }
}
