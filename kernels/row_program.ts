/**
 * A WebGPU program with one workgroup of 64 invocations per row of the last axis (RMSNorm, LayerNorm): the
 * dispatch, the uniforms (C, rows, eps) and a workgroup sum `rowSum(t, s)` in shared memory. `body` is WGSL that
 * sees `row`, `t` (invocation in the row), `C`, `live` (row < rows) and `base` (first element of the row).
 */
import { flatDispatch, type WebGPUProgram } from './_webgpu_internal.ts';
import { workgroupSumWgsl } from './wgsl_reduce.ts';

export const ROW_WORKGROUP = 64;

export class RowProgram implements WebGPUProgram {
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [ROW_WORKGROUP, 1, 1];
  uniforms = 'C : i32, rows : i32, eps : f32,';

  constructor(
    readonly variableNames: string[],
    readonly shaderKey: string,
    shape: number[],
    private readonly body: string,
  ) {
    this.outputShape = shape;
    this.dispatchLayout = { x: [0] };
    // one workgroup per row, over x and y past the 65535-workgroup limit per dimension
    this.dispatch = flatDispatch(shape.slice(0, -1).reduce((a, b) => a * b, 1), 1);
  }

  getUserCode(): string {
    const WG = ROW_WORKGROUP;
    return `
      ${workgroupSumWgsl('rowSum', 'f32', WG)}
      fn main(unused : i32) {
        let row = i32(workgroupId.y * numWorkgroups.x + workgroupId.x);
        let t = i32(localId.x);
        let C = uniforms.C;
        let live = row < uniforms.rows;
        let base = row * C;
        ${this.body}
      }
    `;
  }
}

/** The uniforms of a RowProgram over `shape` with epsilon `eps`. */
export function rowUniforms(shape: readonly number[], eps: number): { type: string; data: number[] }[] {
  return [
    { type: 'int32', data: [shape[shape.length - 1]!] },
    { type: 'int32', data: [shape.slice(0, -1).reduce((a, b) => a * b, 1)] },
    { type: 'float32', data: [eps] },
  ];
}
