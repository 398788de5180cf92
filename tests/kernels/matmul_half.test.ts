/**
 * The f16 subgroup-matrix matmul's plumbing, where CI can check it (SwiftShader has neither shader-f16 nor
 * subgroup matrices; the kernel's numbers are checked on the H200 by `bench kernels`): the shader markers that
 * let a tfjs program enable extensions, declare f16 inputs and get a uniform workgroup id; the f16 packing
 * program (exact, against a JS rounding); the program's shader key; and precision 'f16' computing fp32 where
 * the device has no subgroup matrices.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { applyShaderMarkers, flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../../kernels/_webgpu_internal.ts';
import { matmulFast } from '../../kernels/matmul/op.ts';
import { HalfPackProgram, MatMulHalfProgram, halfMatmulFits, halfMatmulShape } from '../../kernels/matmul/webgpu_half.ts';
import { MatMulHalfStagedProgram, STAGED_LAYOUT, stagedFits } from '../../kernels/matmul/webgpu_half_staged.ts';
import { maxAbsDiff, seeded } from '../_helpers/close.ts';

const TFJS_LIKE = `
      @group(0) @binding(0) var<storage, read_write> result: array<f32>;
      @group(0) @binding(1) var<storage, read> a: array<i32>;
      @group(0) @binding(2) var<storage, read> b: array<i32>;
//!enable f16 chromium_experimental_subgroup_matrix
//!f16 a b
//!entry mainWg
      fn main() {}
      fn mainWg(wid : vec3<u32>) {}
      fn _start(@builtin(workgroup_id) WorkgroupId : vec3<u32>) {
        workgroupId = WorkgroupId;
        main();
      }`;

it('shader markers: extensions first, f16 inputs, the entry point redirected; code without markers untouched', () => {
  const out = applyShaderMarkers(TFJS_LIKE);
  expect(out.startsWith('enable f16;\nenable chromium_experimental_subgroup_matrix;\n')).toBe(true);
  expect(out).toContain('var<storage, read> a: array<f16>;');
  expect(out).toContain('var<storage, read> b: array<f16>;');
  expect(out).toContain('var<storage, read_write> result: array<f32>;');
  expect(out).toContain('mainWg(WorkgroupId);');
  expect(out.slice(out.indexOf('fn _start('))).not.toContain('main();');
  expect(out).toContain('fn main() {}'); // only the call in the entry point changes
  const plain = TFJS_LIKE.replace(/^\/\/!.*$/gm, '');
  expect(applyShaderMarkers(plain)).toBe(plain);
  expect(() => applyShaderMarkers(TFJS_LIKE.replace('//!f16 a b', '//!f16 a c'))).toThrow(/'c'/);
  expect(() => applyShaderMarkers(TFJS_LIKE.replace('main();', 'other();'))).toThrow(/entry point/);
});

it('shader markers: entry arguments add builtins in order; diagnostics go after the extensions; unknown arguments throw', () => {
  const src = TFJS_LIKE.replace('//!entry mainWg', '//!entry mainWg LocalIndex SubgroupId\n//!diagnostic off subgroup_uniformity');
  const out = applyShaderMarkers(src);
  expect(out).toContain('mainWg(WorkgroupId, LocalIndex, SubgroupId);');
  expect(out).toContain('fn _start(@builtin(subgroup_id) SubgroupId : u32, @builtin(workgroup_id) WorkgroupId');
  expect(out.indexOf('diagnostic(off, subgroup_uniformity);')).toBeGreaterThan(out.indexOf('enable chromium_experimental_subgroup_matrix;'));
  expect(out.indexOf('diagnostic(off, subgroup_uniformity);')).toBeLessThan(out.indexOf('var<storage'));
  const local = applyShaderMarkers(TFJS_LIKE.replace('//!entry mainWg', '//!entry mainWg LocalIndex'));
  expect(local).toContain('mainWg(WorkgroupId, LocalIndex);');
  expect(local).not.toContain('subgroup_id');
  expect(() => applyShaderMarkers(TFJS_LIKE.replace('//!entry mainWg', '//!entry mainWg GlobalId'))).toThrow(/GlobalId/);
});

/** Writes its workgroup's x id through mainWg: wrong unless the device applies the markers. */
class WorkgroupIdProgram implements WebGPUProgram {
  variableNames: string[] = [];
  outputShape: number[];
  shaderKey = 'test_marker_entry';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [4, 1, 1];
  size = true; // a uniform the shader reads: tfjs always binds its uniforms
  constructor(n: number) {
    this.outputShape = [n];
    this.dispatch = [n / 4, 1, 1];
  }
  getUserCode(): string {
    return `
//!entry mainWg
      fn main() {}
      fn mainWg(wid : vec3<u32>) {
        for (var i = 0u; i < 4u; i++) {
          let o = wid.x * 4u + i;
          if (o < u32(uniforms.size)) { result[o] = f32(wid.x * 10u + i); }
        }
      }
    `;
  }
}

function halfOf(x: number): number {
  // f16 round-to-nearest-even of x, as a number (normal range only: the test values are)
  if (x === 0) return 0;
  const e = Math.floor(Math.log2(Math.abs(x)));
  const step = 2 ** (e - 10);
  const q = x / step;
  const r = Math.round(q);
  const even = Math.abs(q - Math.trunc(q)) === 0.5 ? (Math.trunc(q) % 2 === 0 ? Math.trunc(q) : Math.trunc(q) + Math.sign(q)) : r;
  return even * step;
}

function decodeHalf(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

it('webgpu (SwiftShader): our device applies the markers; fp32 → f16 packing is exact; f16 precision falls back to fp32', async () => {
  await selectDevice('webgpu', { allowSoftware: true });
  const gpu = tf.backend() as unknown as WebGPUBackend;
  const ids = gpu.runWebGPUProgram(new WorkgroupIdProgram(12), [], 'float32');
  const idsT = tf.engine().makeTensorFromTensorInfo(ids);
  expect(Array.from(await idsT.data())).toEqual([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]);
  idsT.dispose();

  // odd length (the last int32 holds one half and a zero), values that need rounding, both signs
  const vals = Array.from({ length: 9 }, (_, i) => (i % 2 ? -1 : 1) * (0.1 + i * 1.37) * 2 ** (i - 4));
  const x = tf.tensor1d(vals);
  const packed = gpu.runWebGPUProgram(new HalfPackProgram(vals.length), [x as unknown as TensorInfo], 'int32', [{ type: 'int32', data: [vals.length] }]);
  const p = tf.engine().makeTensorFromTensorInfo(packed);
  expect(p.shape).toEqual([5]);
  const words = Array.from(await p.data());
  const halves = words.flatMap((w) => [decodeHalf(w & 0xffff), decodeHalf((w >>> 16) & 0xffff)]);
  expect(halves.slice(0, 9)).toEqual(vals.map(halfOf));
  expect(halves[9]).toBe(0);
  tf.dispose([x, p]);

  // no subgroup matrices here: precision 'f16' is the fp32 kernel, exactly
  expect(halfMatmulShape()).toBeNull();
  const a = tf.tensor3d(seeded(64 * 32, 1), [1, 64, 32]);
  const b = tf.tensor3d(seeded(32 * 64, 2), [1, 32, 64]);
  const h = matmulFast(a, b, { precision: 'f16' });
  const f = matmulFast(a, b);
  expect(await maxAbsDiff(h, f)).toBe(0);
  tf.dispose([a, b, h, f]);
});

it('the f16 program bakes the matrix shape and subgroup size, never M, N or K; only whole blocks fit', () => {
  const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const p1 = new MatMulHalfProgram([1, 128, 64], cfg, 32);
  const p2 = new MatMulHalfProgram([3, 4096, 4096], cfg, 32);
  expect(p1.shaderKey).toBe(p2.shaderKey);
  expect(p1.getUserCode()).toBe(p2.getUserCode());
  expect(p2.dispatch).toEqual([64, 64, 3]);
  expect(new MatMulHalfProgram([1, 128, 64], { ...cfg, N: 8 }, 32).shaderKey).not.toBe(p1.shaderKey);
  expect(new MatMulHalfProgram([1, 128, 64], cfg, 64).shaderKey).not.toBe(p1.shaderKey);
  const code = p1.getUserCode();
  expect(code.match(/subgroupMatrixMultiplyAccumulate/g)).toHaveLength(16);
  expect(code).toContain('//!f16 a b');
  expect(halfMatmulFits(cfg, 128, 64, 32)).toBe(true);
  expect(halfMatmulFits(cfg, 96, 64, 32)).toBe(false); // M not a multiple of 64
  expect(halfMatmulFits(cfg, 128, 64, 40)).toBe(false); // K not a multiple of 16
  expect(new HalfPackProgram(9).outputShape).toEqual([5]);
  expect(new HalfPackProgram(9).dispatch).toEqual(flatDispatch(5, 256));
});

it('the staged f16 program: layout and matrix shape baked and keyed, never M, N or K; whole 128x256 blocks and slice pairs fit', () => {
  const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const p1 = new MatMulHalfStagedProgram([1, 128, 256], cfg, 32);
  const p2 = new MatMulHalfStagedProgram([2, 4096, 4096], cfg, 32);
  expect(p1.shaderKey).toBe(p2.shaderKey);
  expect(p1.getUserCode()).toBe(p2.getUserCode());
  expect(p2.dispatch).toEqual([16, 32, 2]);
  expect(p2.workgroupSize).toEqual([256, 1, 1]);
  expect(p2.variableComponents).toEqual([4, 4]); // 16-byte loads of packed halves
  const other = new MatMulHalfStagedProgram([1, 128, 256], cfg, 32, { ...STAGED_LAYOUT, bk: 32 });
  expect(other.shaderKey).not.toBe(p1.shaderKey);
  expect(other.getUserCode()).not.toBe(p1.getUserCode());
  const code = p1.getUserCode();
  // two unrolled steps of 4×4 matrices each; a barrier after the prologue and after each step
  expect(code.match(/subgroupMatrixMultiplyAccumulate/g)).toHaveLength(32);
  expect(code.match(/workgroupBarrier\(\)/g)).toHaveLength(3);
  expect(code).toContain('//!entry mainWg LocalIndex SubgroupId');
  // three buffers of [128 rows × (16 + 8 padding)] for A and [16 rows × (256 + 8)] for B
  expect(code).toContain(`array<f16, ${3 * 128 * 24}>`);
  expect(code).toContain(`array<f16, ${3 * 16 * 264}>`);
  expect(stagedFits(cfg, 128, 256, 32)).toBe(true);
  expect(stagedFits(cfg, 64, 256, 32)).toBe(false); // M a multiple of 64 only: the direct program takes it
  expect(stagedFits(cfg, 128, 128, 32)).toBe(false);
  expect(stagedFits(cfg, 128, 256, 16)).toBe(false); // one slice: not a pair
  expect(() => new MatMulHalfStagedProgram([1, 128, 128], cfg, 32, { ...STAGED_LAYOUT, bk: 12 })).toThrow(/bk/);
  expect(() => new MatMulHalfStagedProgram([1, 128, 128], cfg, 32, { ...STAGED_LAYOUT, wgm: 4, wgn: 4, tm: 1, tn: 1, bk: 16 })).toThrow(/evenly/);
});
