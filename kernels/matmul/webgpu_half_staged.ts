/**
 * f16-in / f32-accumulate matmul on subgroup matrices, with operands staged through workgroup memory. A
 * workgroup of WGM×WGN subgroups computes a (WGM·TM·m)×(WGN·TN·n) block, K in slices of BK. Each slice is
 * loaded 16 bytes (8 halves) per thread into registers two steps before it is multiplied, written into one of
 * three workgroup buffers (rows padded against bank conflicts) one step before, and read back as subgroup
 * matrices: a global load has two steps to land, and there is one barrier per step. WGSL has no asynchronous
 * copy into workgroup memory; this software pipeline stands in for it. Layouts were searched on an H200
 * (bench/RESULTS.md): 2×4 subgroups of 4×4 matrices (a 128×256 block) with 16-deep slices measured 2.1x the
 * direct-from-storage program (webgpu_half.ts) at 4096³, with Dawn's robustness checks off. Shapes that are not
 * whole blocks take that program or fp32.
 */
import type { SubgroupMatrixConfig } from '../_webgpu_internal.ts';
import { HALF_MATMUL_BASES, HalfMatmulProgramBase, halfMatrixAliases } from './webgpu_half.ts';

export interface StagedLayout {
  /** Subgroups per workgroup along M and N. */
  wgm: number;
  wgn: number;
  /** Result matrices per subgroup along M and N. */
  tm: number;
  tn: number;
  /** K slice staged per step (a multiple of the matrix K and of 8). */
  bk: number;
  /** Halves of padding per workgroup-memory row. */
  pad: number;
}

export const STAGED_LAYOUT: StagedLayout = { wgm: 2, wgn: 4, tm: 4, tn: 4, bk: 16, pad: 8 };

export function stagedBlock(config: SubgroupMatrixConfig, l: StagedLayout = STAGED_LAYOUT): { bm: number; bn: number } {
  return { bm: l.wgm * l.tm * config.M, bn: l.wgn * l.tn * config.N };
}

/** Whether [batch, M, K] · [K, N] is made of whole staged blocks (and K of whole pairs of slices). */
export function stagedFits(config: SubgroupMatrixConfig, M: number, N: number, K: number, l: StagedLayout = STAGED_LAYOUT): boolean {
  const { bm, bn } = stagedBlock(config, l);
  return M % bm === 0 && N % bn === 0 && K % (2 * l.bk) === 0;
}

/** C[batch] = A[batch] · B[batch or 0]; A and B packed halves (int32 tensors, read as vec4), C fp32. */
export class MatMulHalfStagedProgram extends HalfMatmulProgramBase {
  variableComponents = [4, 4];

  constructor(outShape: [number, number, number], private readonly config: SubgroupMatrixConfig, private readonly subgroup: number, private readonly layout: StagedLayout = STAGED_LAYOUT) {
    super(outShape);
    const { bm, bn } = stagedBlock(config, layout);
    if (layout.bk % config.K !== 0 || layout.bk % 8 !== 0) throw new Error(`staged matmul: bk ${layout.bk} must be a multiple of ${config.K} and of 8`);
    const threads = layout.wgm * layout.wgn * subgroup;
    if (((bm * layout.bk) / 8) % threads !== 0 || ((layout.bk * bn) / 8) % threads !== 0) throw new Error('staged matmul: a slice must split evenly over the threads');
    this.workgroupSize = [threads, 1, 1];
    this.dispatch = [outShape[2] / bn, outShape[1] / bm, outShape[0]];
    const { wgm, wgn, tm, tn, bk, pad } = layout;
    // everything baked into the source is in the key; M, N, K and the batch are uniforms
    this.shaderKey = `mm_half_staged_${config.M}x${config.N}x${config.K}_${subgroup}_${wgm}x${wgn}_${tm}x${tn}_${bk}_${pad}`;
  }

  getUserCode(): string {
    const { M: sm, N: sn, K: sk } = this.config;
    const { wgm, wgn, tm, tn, bk, pad } = this.layout;
    const { bm, bn } = stagedBlock(this.config, this.layout);
    const threads = wgm * wgn * this.subgroup;
    const sa = bk + pad;
    const sb = bn + pad;
    const aPer = (bm * bk) / 8 / threads;
    const bPer = (bk * bn) / 8 / threads;
    const acc: string[] = [];
    const mma: string[] = [];
    const store: string[] = [];
    const regs: string[] = [];
    const offsets: string[] = [];
    for (let i = 0; i < tm; i++) mma.push(`let a${i} = subgroupMatrixLoad<HalfL>(&As, aOff + (sr + ${i * sm}u) * ${sa}u + kk, false, ${sa}u);`);
    for (let j = 0; j < tn; j++) mma.push(`let b${j} = subgroupMatrixLoad<HalfR>(&Bs, bOff + kk * ${sb}u + sc + ${j * sn}u, false, ${sb}u);`);
    for (let i = 0; i < tm; i++) {
      for (let j = 0; j < tn; j++) {
        acc.push(`var c${i}${j} = HalfAcc();`);
        mma.push(`c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}${j});`);
        store.push(`subgroupMatrixStore(&result, oBase + (row0 + sr + ${i * sm}u) * N + col0 + sc + ${j * sn}u, c${i}${j}, false, N);`);
      }
    }
    // per thread: where its 16-byte pieces of a slice come from (in vec4 units) and go to (in halves)
    for (let t = 0; t < aPer; t++) {
      const e = `(li + ${t * threads}u)`;
      offsets.push(`let ga${t} = (aBase + (row0 + ${e} / ${bk / 8}u) * K + (${e} % ${bk / 8}u) * 8u) / 8u;`);
      offsets.push(`let wa${t} = (${e} / ${bk / 8}u) * ${sa}u + (${e} % ${bk / 8}u) * 8u;`);
    }
    for (let t = 0; t < bPer; t++) {
      const e = `(li + ${t * threads}u)`;
      offsets.push(`let gb${t} = (bBase + (${e} / ${bn / 8}u) * N + col0 + (${e} % ${bn / 8}u) * 8u) / 8u;`);
      offsets.push(`let wb${t} = (${e} / ${bn / 8}u) * ${sb}u + (${e} % ${bn / 8}u) * 8u;`);
    }
    for (const set of ['x', 'y']) {
      for (let t = 0; t < aPer; t++) regs.push(`var ra${set}${t} : vec4<i32>;`);
      for (let t = 0; t < bPer; t++) regs.push(`var rb${set}${t} : vec4<i32>;`);
    }
    // slice s (an expression) into register set `set`, and from it into workgroup buffer s % 3
    const fetch = (set: string, s: string) => [
      ...Array.from({ length: aPer }, (_, t) => `ra${set}${t} = a[ga${t} + (${s}) * ${bk / 8}u];`),
      ...Array.from({ length: bPer }, (_, t) => `rb${set}${t} = b[gb${t} + (${s}) * ${bk / 8}u * N];`),
    ].join('\n          ');
    const put = (set: string, s: string) => [
      `let buf = (${s}) % 3u;`,
      ...Array.from({ length: aPer }, (_, t) => `putA(buf * ${bm * sa}u + wa${t}, ra${set}${t});`),
      ...Array.from({ length: bPer }, (_, t) => `putB(buf * ${bk * sb}u + wb${t}, rb${set}${t});`),
    ].join('\n            ');
    // step `it`: write slice it+1 (fetched two steps ago) into its buffer, fetch slice it+3 into the same
    // registers, multiply slice it; the buffer written was last read at step it-2, before the last barrier
    const step = (it: string, set: string) => `{
          let it = ${it};
          if (it + 1u < steps) {
            ${put(set, 'it + 1u')}
          }
          if (it + 3u < steps) {
            ${fetch(set, 'it + 3u')}
          }
          let aOff = (it % 3u) * ${bm * sa}u;
          let bOff = (it % 3u) * ${bk * sb}u;
          for (var kk = 0u; kk < ${bk}u; kk += ${sk}u) {
            ${mma.join('\n            ')}
          }
          workgroupBarrier();
        }`;
    return `
//!enable f16 subgroups chromium_experimental_subgroup_matrix
//!entry mainWg LocalIndex SubgroupId
//!diagnostic off subgroup_uniformity
      ${halfMatrixAliases(this.config)}
      var<workgroup> As : array<f16, ${3 * bm * sa}>;
      var<workgroup> Bs : array<f16, ${3 * bk * sb}>;
      // eight halves, packed two per i32, into consecutive workgroup slots
      ${['A', 'B'].map((m) => `fn put${m}(o : u32, v : vec4<i32>) {
        let p0 = bitcast<vec2<f16>>(v.x);
        let p1 = bitcast<vec2<f16>>(v.y);
        let p2 = bitcast<vec2<f16>>(v.z);
        let p3 = bitcast<vec2<f16>>(v.w);
        ${m}s[o] = p0.x; ${m}s[o + 1u] = p0.y; ${m}s[o + 2u] = p1.x; ${m}s[o + 3u] = p1.y;
        ${m}s[o + 4u] = p2.x; ${m}s[o + 5u] = p2.y; ${m}s[o + 6u] = p3.x; ${m}s[o + 7u] = p3.y;
      }`).join('\n      ')}
      // never called: the entry point runs mainWg (see applyShaderMarkers)
      fn main() {}
      fn mainWg(wid : vec3<u32>, li : u32, sid : u32) {
        ${HALF_MATMUL_BASES}
        let row0 = wid.y * ${bm}u;
        let col0 = wid.x * ${bn}u;
        let sr = (sid / ${wgn}u) * ${tm * sm}u;
        let sc = (sid % ${wgn}u) * ${tn * sn}u;
        ${offsets.join('\n        ')}
        ${acc.join('\n        ')}
        ${regs.join('\n        ')}
        // K is a whole number of slice pairs (stagedFits): the loop below takes two steps at a time
        let steps = K / ${bk}u;
        ${fetch('x', '0u')}
        ${fetch('y', '1u')}
        {
          ${put('x', '0u')}
        }
        if (steps > 2u) {
          ${fetch('x', '2u')}
        }
        workgroupBarrier();
        for (var pair = 0u; pair < steps; pair += 2u) {
          ${step('pair', 'y')}
          ${step('pair + 1u', 'x')}
        }
        ${store.join('\n        ')}
      }
    `;
  }
}
