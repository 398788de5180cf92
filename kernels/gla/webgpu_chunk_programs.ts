/**
 * Chunked GLA scan in three WGSL passes (architectures.md §1.6, chunk C, 16-row sub-chunks):
 *   1. GlaChunkStateProgram  per (chunk, head): ΔS = (K ⊙ exp(G_last − G))ᵀ V and γ = exp(G_last)
 *   2. GlaStateScanProgram   S_c = γ_{c−1} ⊙ S_{c−1} + ΔS_{c−1} (the state entering chunk c), as a two-level scan
 *      over segments of 32 chunks (fold each segment, scan the segments, apply within each segment)
 *   3. GlaChunkOutputProgram per (chunk, head): O = acc + s·[(Q ⊙ exp(G)) S_c + (A ⊙ M) V]
 * G is the in-chunk inclusive cumsum of log α, so every exponent is a difference G_i − G_j with i ≥ j (≤ 0).
 * The reverse scan maps scan position p to token T−1−p; positions ≥ T act as padding (g = k = v = 0).
 * DK, DV and C are baked into the WGSL and named in every shader key; T, BH, nC, reverse, scale are uniforms.
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';

const UNIFORMS = 'T : i32, BH : i32, nC : i32, reverse : i32, scale : f32,';

/** WGSL: token index of scan position p, and whether p is inside the sequence. */
const TOKEN = `
  fn tokenOf(p : i32) -> i32 { if (uniforms.reverse == 1) { return uniforms.T - 1 - p; } return p; }`;

/** WGSL: loads the chunk's log-gates into gsh and turns them into in-chunk inclusive cumsums. */
export function loadCumsum(C: number, DK: number, alsoK: boolean): string {
  return `
    for (var e = i32(localIndex); e < ${C * DK}; e += WG) {
      let p = c * ${C} + e / ${DK};
      var gv = 0.0;
      var kv = 0.0;
      if (p < uniforms.T) {
        let at = (bh * uniforms.T + tokenOf(p)) * ${DK} + e % ${DK};
        gv = g[at];
        ${alsoK ? 'kv = k[at];' : ''}
      }
      gsh[e] = gv;
      ${alsoK ? 'ksh[e] = kv;' : ''}
    }
    workgroupBarrier();
    if (i32(localIndex) < ${DK}) {
      var run = 0.0;
      for (var r = 0; r < ${C}; r++) {
        run += gsh[r * ${DK} + i32(localIndex)];
        gsh[r * ${DK} + i32(localIndex)] = run;
      }
    }
    workgroupBarrier();`;
}

abstract class ChunkProgram implements WebGPUProgram {
  abstract variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms = UNIFORMS;

  constructor(name: string, outputShape: number[], protected readonly dk: number, protected readonly dv: number, protected readonly chunk: number, dispatch: [number, number, number], wg: number) {
    this.outputShape = outputShape;
    this.shaderKey = `gla_${name}_dk${dk}_dv${dv}_c${chunk}_wg${wg}`;
    this.dispatch = dispatch;
    this.workgroupSize = [wg, 1, 1];
  }

  abstract getUserCode(): string;
}

/** Output [BH, nC, DK, DV + 1]: ΔS in the first DV columns, γ = exp(G_last) in the last. */
export class GlaChunkStateProgram extends ChunkProgram {
  variableNames = ['k', 'v', 'g'];

  constructor(BH: number, nC: number, dk: number, dv: number, chunk: number) {
    super('state', [BH, nC, dk, dv + 1], dk, dv, chunk, [nC, BH, 1], 256);
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    const DV4 = DV / 4;
    return `
      ${TOKEN}
      const WG = 256;
      var<workgroup> gsh : array<f32, ${C * DK}>;
      var<workgroup> ksh : array<f32, ${C * DK}>;
      var<workgroup> vsh : array<vec4<f32>, ${C * DV4}>;
      fn main(unused : i32) {
        let c = i32(workgroupId.x);
        let bh = i32(workgroupId.y);
        ${loadCumsum(C, DK, true)}
        for (var e = i32(localIndex); e < ${C * DV4}; e += WG) {
          let p = c * ${C} + e / ${DV4};
          var vv = vec4<f32>(0.0);
          if (p < uniforms.T) {
            let at = ((bh * uniforms.T + tokenOf(p)) * ${DV4} + e % ${DV4}) * 4;
            vv = vec4<f32>(v[at], v[at + 1], v[at + 2], v[at + 3]);
          }
          vsh[e] = vv;
        }
        // k decayed to the chunk's end: exp(G_last − G_r) ≤ 1
        for (var e = i32(localIndex); e < ${C * DK}; e += WG) {
          ksh[e] = ksh[e] * exp(gsh[${(C - 1) * DK} + e % ${DK}] - gsh[e]);
        }
        workgroupBarrier();
        let base = (bh * uniforms.nC + c) * ${DK};
        // task = (pair of key channels, 4 value columns): one v load feeds 8 accumulators
        for (var task = i32(localIndex); task < ${(DK / 2) * DV4}; task += WG) {
          let d0 = (task / ${DV4}) * 2;
          let j4 = task % ${DV4};
          var a0 = vec4<f32>(0.0);
          var a1 = vec4<f32>(0.0);
          for (var r = 0; r < ${C}; r++) {
            let vv = vsh[r * ${DV4} + j4];
            a0 = fma(vec4<f32>(ksh[r * ${DK} + d0]), vv, a0);
            a1 = fma(vec4<f32>(ksh[r * ${DK} + d0 + 1]), vv, a1);
          }
          let o0 = (base + d0) * ${DV + 1} + j4 * 4;
          let o1 = o0 + ${DV + 1};
          result[o0] = a0.x; result[o0 + 1] = a0.y; result[o0 + 2] = a0.z; result[o0 + 3] = a0.w;
          result[o1] = a1.x; result[o1 + 1] = a1.y; result[o1 + 2] = a1.z; result[o1 + 3] = a1.w;
        }
        if (i32(localIndex) < ${DK}) {
          let d = i32(localIndex);
          result[(base + d) * ${DV + 1} + ${DV}] = exp(gsh[${(C - 1) * DK} + d]);
        }
      }
    `;
  }
}

/** Chunks per segment of the two-level state scan: the longest sequential walk is max(SEG, nC/SEG) steps. */
export const GLA_SEG = 32;

/** WGSL: walks chunks c0..c1 of head bh for entry (d, j), s ← γ_c s + ΔS_c; `visit` runs before each update. */
function walk(DK: number, DV: number, visit: string): string {
  const U = 8; // loads issued together, so the walk waits on memory once per U chunks
  const loads: string[] = [];
  const steps: string[] = [];
  for (let u = 0; u < U; u++) {
    loads.push(`let i${u} = ((bh * uniforms.nC + min(c + ${u}, c1 - 1)) * ${DK} + d) * ${DV + 1};
          let x${u} = ds[i${u} + j];
          let y${u} = ds[i${u} + ${DV}];`);
    steps.push(`if (c + ${u} < c1) { ${visit.replaceAll('CHUNK', `c + ${u}`)} s = fma(y${u}, s, x${u}); gam = gam * y${u}; }`);
  }
  return `for (var c = c0; c < c1; c += ${U}) {
          ${loads.join('\n          ')}
          ${steps.join('\n          ')}
        }`;
}

/**
 * Two-level scan of the chunk states. mode 'fold': per (segment, entry), the segment's own transfer
 * (ΔS from a zero start, and Π γ in the last column). 'segments': per entry, the state entering each
 * segment. 'apply': per (segment, entry), the state entering each chunk (output [BH, nC, DK, DV]).
 */
export class GlaStateScanProgram extends ChunkProgram {
  variableNames: string[];

  constructor(
    BH: number,
    nC: number,
    dk: number,
    dv: number,
    chunk: number,
    private readonly mode: 'fold' | 'segments' | 'apply',
  ) {
    const nSeg = Math.ceil(nC / GLA_SEG);
    const shape = mode === 'fold' ? [BH, nSeg, dk, dv + 1] : mode === 'segments' ? [BH, nSeg, dk, dv] : [BH, nC, dk, dv];
    const n = BH * dk * dv * (mode === 'segments' ? 1 : nSeg);
    super(`scan_${mode}`, shape, dk, dv, chunk, [Math.ceil(n / 64), 1, 1], 64);
    this.variableNames = mode === 'apply' ? ['ds', 'seg'] : ['ds'];
  }

  getUserCode(): string {
    const { dk: DK, dv: DV } = this;
    const head = `
        let d = (index / ${DV}) % ${DK};
        let j = index % ${DV};
        let nSeg = (uniforms.nC + ${GLA_SEG - 1}) / ${GLA_SEG};`;
    if (this.mode === 'segments') {
      // here ds is the fold output [BH, nSeg, DK, DV + 1]: walk segments as if they were chunks
      return `
      fn main(index : i32) {
        if (index >= uniforms.BH * ${DK * DV}) { return; }
        ${head}
        let bh = index / ${DK * DV};
        var s = 0.0;
        for (var g = 0; g < nSeg; g++) {
          let at = ((bh * nSeg + g) * ${DK} + d) * ${DV + 1};
          result[((bh * nSeg + g) * ${DK} + d) * ${DV} + j] = s;
          s = fma(ds[at + ${DV}], s, ds[at + j]);
        }
      }`;
    }
    const fold = this.mode === 'fold';
    return `
      fn main(index : i32) {
        ${head}
        if (index >= uniforms.BH * nSeg * ${DK * DV}) { return; }
        let bh = index / (nSeg * ${DK * DV});
        let g = (index / ${DK * DV}) % nSeg;
        let c0 = g * ${GLA_SEG};
        let c1 = min(c0 + ${GLA_SEG}, uniforms.nC);
        var s = ${fold ? '0.0' : `seg[((bh * nSeg + g) * ${DK} + d) * ${DV} + j]`};
        var gam = 1.0;
        ${walk(DK, DV, fold ? '' : `result[((bh * uniforms.nC + CHUNK) * ${DK} + d) * ${DV} + j] = s;`)}
        ${fold ? `let o = ((bh * nSeg + g) * ${DK} + d) * ${DV + 1};
        result[o + j] = s;
        if (j == 0) { result[o + ${DV}] = gam; }` : ''}
      }
    `;
  }
}
