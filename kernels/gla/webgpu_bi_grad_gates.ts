/**
 * Passes 4 and 6 of the BiGLA backward (backward.ts): the log-gate gradients. Pass 3 left, per direction, z
 * summed from each token to the end of its chunk in the direction's scan order; the chunks after it add their
 * totals. GlaGateTotalsProgram lays the chunk totals out as a state scan with γ = 1 ([2·BH, nC, DK, 2], each
 * direction's chunks from the far end of its scan), the scan of webgpu_chunk_programs.ts (DV = 1) sums the totals
 * of the chunks after each one, and GlaGateGradProgram adds that onto the in-chunk sums: output [2, BH, T, DK],
 * the forward gates' gradient then the backward gates' (with one direction, `dirs`, [1, BH, T, DK]).
 * C and DK are baked (shader key); T, BH and nC are uniforms.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';
import type { GlaGradDirs } from './webgpu_bi_grad_chunk.ts';

/** WGSL: the direction of output slot s, where its z starts in pass 3's packed output (floats), and the chunk at scan
 *  slot x. With one direction there is one slot. */
function layout(DK: number, DV: number, dirs: GlaGradDirs): string {
  return `
      fn dirOf(s : i32) -> i32 { return ${dirs === 'both' ? 's' : dirs === 'fwd' ? '0' : '1'}; }
      fn zStart(s : i32) -> i32 { return uniforms.BH * uniforms.T * (${2 * DK + DV} + s * ${DK}); }
      fn chunkAt(dir : i32, x : i32) -> i32 { return select(uniforms.nC - 1 - x, x, dir == 1); }`;
}

const slots = (dirs: GlaGradDirs) => (dirs === 'both' ? 2 : 1);

export class GlaGateTotalsProgram implements WebGPUProgram {
  variableNames = ['packed'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = 'T : i32, BH : i32, nC : i32, reverse : i32, scale : f32,';

  constructor(BH: number, nC: number, private readonly dk: number, private readonly dv: number, private readonly chunk: number, private readonly dirs: GlaGradDirs = 'both') {
    this.outputShape = [slots(dirs) * BH, nC, dk, 2];
    this.dispatch = flatDispatch(slots(dirs) * BH * nC * dk, 64);
    this.shaderKey = `gla_bi_grad_totals_dk${dk}_dv${dv}_c${chunk}_${dirs}`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    return `
      ${layout(DK, DV, this.dirs)}
      fn main(index : i32) {
        if (index >= ${slots(this.dirs)} * uniforms.BH * uniforms.nC * ${DK}) { return; }
        let d = index % ${DK};
        let x = (index / ${DK}) % uniforms.nC;
        let seq = index / (${DK} * uniforms.nC);
        let slot = seq / uniforms.BH;
        let dir = dirOf(slot);
        let bh = seq % uniforms.BH;
        let c = chunkAt(dir, x);
        // the chunk's total is the sum from its first scan position that is a real token
        let t = select(c * ${C}, min(c * ${C} + ${C - 1}, uniforms.T - 1), dir == 1);
        result[index * 2] = packed[zStart(slot) + (bh * uniforms.T + t) * ${DK} + d];
        result[index * 2 + 1] = 1.0;
      }
    `;
  }
}

export class GlaGateGradProgram implements WebGPUProgram {
  variableNames = ['packed', 'carry'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = 'T : i32, BH : i32, nC : i32, reverse : i32, scale : f32,';

  constructor(BH: number, T: number, private readonly dk: number, private readonly dv: number, private readonly chunk: number, private readonly dirs: GlaGradDirs = 'both') {
    this.outputShape = [slots(dirs), BH, T, dk];
    this.dispatch = flatDispatch(slots(dirs) * BH * T * dk, 64);
    this.shaderKey = `gla_bi_grad_gates_dk${dk}_dv${dv}_c${chunk}_${dirs}`;
  }

  getUserCode(): string {
    const { dk: DK, dv: DV, chunk: C } = this;
    return `
      ${layout(DK, DV, this.dirs)}
      fn main(index : i32) {
        let n = uniforms.BH * uniforms.T * ${DK};
        if (index >= ${slots(this.dirs)} * n) { return; }
        let slot = index / n;
        let dir = dirOf(slot);
        let r = index % n;
        let d = r % ${DK};
        let bh = r / (uniforms.T * ${DK});
        let t = (r / ${DK}) % uniforms.T;
        let x = chunkAt(dir, t / ${C}); // chunkAt is its own inverse
        result[index] = packed[zStart(slot) + r] + carry[((slot * uniforms.BH + bh) * uniforms.nC + x) * ${DK} + d];
      }
    `;
  }
}
