/**
 * Chunked GLA scan as four WGSL passes (chunks of 16 tokens), parallel everywhere but one short scan:
 *   0. G: within-chunk inclusive cumsum of log α                   one invocation per (bh, chunk, i)
 *   1. ΔS_c = Σ_s (k_s ⊙ exp(G_last − G_s))ᵀ v_s per chunk           one per (bh, chunk, i, j)
 *   2. S_c = diag(exp(G_last,c)) S_{c−1} + ΔS_c, state before chunk   one per (bh, i, j), walks the chunks
 *   3. o_t = acc_t + scale·[(q_t ⊙ exp(G_t)) S_{c−1} + Σ_{s≤t in c} (q_t·(k_s ⊙ exp(G_t − G_s))) v_s]
 *                                                                      one per (bh, t, j)
 * Only differences G_t − G_s with t ≥ s in one chunk (or G_last − G_s) are exponentiated: all ≤ 0.
 * "Logical" time τ runs forward; the physical index is T−1−τ for the reverse scan. Positions past T act
 * as padding (α = 1, zero k and v). No size is baked into the source: all are uniforms.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';

export const GLA_CHUNK = 16;

const UNIFORMS = 'T : i32, BH : i32, Dk : i32, Dv : i32, nC : i32, reverse : i32, scale : f32,';
const PHYS = `fn phys(tau : i32) -> i32 { if (uniforms.reverse == 1) { return uniforms.T - 1 - tau; } return tau; }`;

abstract class GlaPass implements WebGPUProgram {
  abstract variableNames: string[];
  outputShape: number[];
  abstract shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [128, 1, 1];
  uniforms = UNIFORMS;
  size = true;
  constructor(outShape: number[]) {
    this.outputShape = outShape;
    this.dispatchLayout = { x: outShape.map((_, i) => i) };
    this.dispatch = flatDispatch(outShape.reduce((a, b) => a * b, 1), this.workgroupSize[0]);
  }
  abstract getUserCode(): string;
}

/** Output G [BH, nC·16, Dk]. */
export class GlaCumsumPass extends GlaPass {
  variableNames = ['g'];
  shaderKey = 'gla_chunk_cumsum';
  getUserCode(): string {
    return `
      ${PHYS}
      fn main(index : i32) {
        let dk = uniforms.Dk;
        if (index >= uniforms.BH * uniforms.nC * dk) { return; }
        let i = index % dk;
        let c = (index / dk) % uniforms.nC;
        let bh = index / (dk * uniforms.nC);
        var acc = 0.0;
        for (var s = 0; s < ${GLA_CHUNK}; s++) {
          let tau = c * ${GLA_CHUNK} + s;
          if (tau < uniforms.T) { acc = acc + f32(g[(bh * uniforms.T + phys(tau)) * dk + i]); }
          result[(bh * uniforms.nC * ${GLA_CHUNK} + tau) * dk + i] = acc;
        }
      }`;
  }
}

/** Output ΔS [BH, nC, Dk, Dv]. */
export class GlaChunkStatePass extends GlaPass {
  variableNames = ['k', 'v', 'G'];
  shaderKey = 'gla_chunk_state';
  getUserCode(): string {
    return `
      ${PHYS}
      fn main(index : i32) {
        let dk = uniforms.Dk;
        let dv = uniforms.Dv;
        if (index >= uniforms.size) { return; }
        let j = index % dv;
        let i = (index / dv) % dk;
        let c = (index / (dv * dk)) % uniforms.nC;
        let bh = index / (dv * dk * uniforms.nC);
        let gBase = bh * uniforms.nC * ${GLA_CHUNK};
        let last = f32(G[(gBase + c * ${GLA_CHUNK} + ${GLA_CHUNK - 1}) * dk + i]);
        var acc = 0.0;
        for (var s = 0; s < ${GLA_CHUNK}; s++) {
          let tau = c * ${GLA_CHUNK} + s;
          if (tau >= uniforms.T) { break; }
          let t = phys(tau);
          let decay = exp(last - f32(G[(gBase + tau) * dk + i]));
          acc = acc + f32(k[(bh * uniforms.T + t) * dk + i]) * decay * f32(v[(bh * uniforms.T + t) * dv + j]);
        }
        result[index] = acc;
      }`;
  }
}

/** Output S_prev [BH, nC, Dk, Dv]: the state entering each chunk. */
export class GlaStateScanPass extends GlaPass {
  variableNames = ['dS', 'G'];
  shaderKey = 'gla_state_scan';
  constructor(outShape: number[]) {
    super(outShape);
    // one invocation per (bh, i, j); it walks the chunks
    this.dispatch = flatDispatch(outShape[0]! * outShape[2]! * outShape[3]!, this.workgroupSize[0]);
  }
  getUserCode(): string {
    return `
      fn main(index : i32) {
        let dk = uniforms.Dk;
        let dv = uniforms.Dv;
        if (index >= uniforms.BH * dk * dv) { return; }
        let j = index % dv;
        let i = (index / dv) % dk;
        let bh = index / (dv * dk);
        let gBase = bh * uniforms.nC * ${GLA_CHUNK};
        var s = 0.0;
        for (var c = 0; c < uniforms.nC; c++) {
          let at = ((bh * uniforms.nC + c) * dk + i) * dv + j;
          result[at] = s;
          let last = f32(G[(gBase + c * ${GLA_CHUNK} + ${GLA_CHUNK - 1}) * dk + i]);
          s = exp(last) * s + f32(dS[at]);
        }
      }`;
  }
}

/**
 * Output o [BH, T, Dv] (physical time order) = acc + scale · (inter + intra). One workgroup per
 * (bh, chunk, block of 16 value columns): the chunk's 16×16 intra-chunk attention A is computed once into
 * workgroup memory (not once per value column), then each invocation (token t, column j) reads it.
 */
export class GlaOutputPass extends GlaPass {
  variableNames = ['q', 'k', 'v', 'G', 'Sp', 'acc'];
  shaderKey = 'gla_chunk_output_tiled';
  override workgroupSize: [number, number, number] = [256, 1, 1];
  constructor(outShape: number[]) {
    super(outShape);
    const [B, H, T, Dv] = outShape as [number, number, number, number];
    this.dispatch = flatDispatch(B * H * Math.ceil(T / GLA_CHUNK) * Math.ceil(Dv / 16) * 256, 256);
  }
  getUserCode(): string {
    return `
      ${PHYS}
      var<workgroup> A : array<f32, ${GLA_CHUNK * GLA_CHUNK}>;
      fn main(index : i32) {
        let dk = uniforms.Dk;
        let dv = uniforms.Dv;
        let lid = i32(localId.x);
        let group = index / 256;
        let jBlocks = (dv + 15) / 16;
        let jb = group % jBlocks;
        let c = (group / jBlocks) % uniforms.nC;
        let bh = group / (jBlocks * uniforms.nC);
        // no early return before the barrier: control flow must stay uniform across the workgroup
        let live = bh < uniforms.BH;
        let gBase = bh * uniforms.nC * ${GLA_CHUNK};
        // first A[tl][sl] = Σ_i q_t k_s exp(G_t − G_s) for sl ≤ tl, inside this chunk
        let tl = lid / ${GLA_CHUNK};
        let sl = lid % ${GLA_CHUNK};
        let tauT = c * ${GLA_CHUNK} + tl;
        let tauS = c * ${GLA_CHUNK} + sl;
        var a = 0.0;
        if (live && sl <= tl && tauT < uniforms.T) {
          let qRow = (bh * uniforms.T + phys(tauT)) * dk;
          let kRow = (bh * uniforms.T + phys(tauS)) * dk;
          for (var i = 0; i < dk; i++) {
            a = a + f32(q[qRow + i]) * f32(k[kRow + i]) * exp(f32(G[(gBase + tauT) * dk + i]) - f32(G[(gBase + tauS) * dk + i]));
          }
        }
        A[lid] = a;
        workgroupBarrier();
        // then invocation (tl, jl): o = inter + Σ_s A[tl][s] v_s[j]
        let jl = lid % 16;
        let j = jb * 16 + jl;
        if (!live || tauT >= uniforms.T || j >= dv) { return; }
        let t = phys(tauT);
        let qRow = (bh * uniforms.T + t) * dk;
        var o = 0.0;
        for (var i = 0; i < dk; i++) {
          o = o + f32(q[qRow + i]) * exp(f32(G[(gBase + tauT) * dk + i])) * f32(Sp[((bh * uniforms.nC + c) * dk + i) * dv + j]);
        }
        for (var s2 = 0; s2 <= tl; s2++) {
          o = o + A[tl * ${GLA_CHUNK} + s2] * f32(v[(bh * uniforms.T + phys(c * ${GLA_CHUNK} + s2)) * dv + j]);
        }
        let at = (bh * uniforms.T + t) * dv + j;
        result[at] = f32(acc[at]) + uniforms.scale * o;
      }`;
  }
}
