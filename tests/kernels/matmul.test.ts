/**
 * matmulFast: the tiled WGSL kernel (SwiftShader) against tfjs's matMul for every transpose pair, sizes
 * that cross and do not fill the 128 tile, K not a multiple of 16, batch and a broadcast weight; gradients;
 * no leaks; one shader per transpose pair for every size. fp32: tolerance 1e-4 relative to √K.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it, onTestFinished } from 'vitest';
import { matmulFast } from '../../kernels/matmul/op.ts';
import { MatMulTiledProgram, matmulTile, matmulTuning } from '../../kernels/matmul/webgpu_program.ts';
import { describeBackends, fastAndReference } from '../_helpers/backends.ts';
import { maxAbsDiff, seeded } from '../_helpers/close.ts';

const ALL = [[false, false], [true, false], [false, true], [true, true]] as const;
// [batch, M, K, N, batchB, transposes]: SwiftShader compiles each transpose pair once per case, so not all everywhere
// the last column: the program's tile edge on webgpu (small grids take 64 by default; 128 is forced)
const CASES: [number, number, number, number, number, readonly (readonly [boolean, boolean])[], 64 | 128][] = [
  [1, 1, 1, 1, 1, [[false, false]], 64],
  [1, 130, 17, 5, 1, ALL, 64],
  [1, 130, 17, 5, 1, ALL, 128],
  [3, 9, 33, 131, 1, [[false, true]], 64],
  [2, 7, 20, 6, 2, [[true, false]], 128],
  [2, 128, 32, 256, 1, [[false, false]], 128], // tiles fit exactly: the unchecked vec4 path
  [2, 64, 32, 192, 1, [[false, false]], 64], // the same for 64-tiles
];

describeBackends('matmulFast', ['cpu', 'webgpu'], (backend) => {
  it.each(CASES)('batch %i, M %i, K %i, N %i, batch of b %i, transposes %j, tile %i', async (batch, M, K, N, batchB, pairs, tile) => {
    if (backend !== 'webgpu' && tile === 128 && CASES.some((c) => c[1] === M && c[2] === K && c[6] === 64)) return; // same maths on cpu
    const saved = matmulTuning.smallTileBelow;
    matmulTuning.smallTileBelow = tile === 64 ? Infinity : 0;
    onTestFinished(() => void (matmulTuning.smallTileBelow = saved));
    for (const [tA, tB] of pairs) {
      const a = tf.tensor3d(seeded(batch * M * K, M + K), tA ? [batch, K, M] : [batch, M, K]);
      const b = tf.tensor3d(seeded(batchB * K * N, N + 3), tB ? [batchB, N, K] : [batchB, K, N]);
      const want = tf.matMul(a, b, tA, tB);
      const before = tf.memory().numTensors;
      const got = matmulFast(a, b, { transposeA: tA, transposeB: tB });
      expect(got.shape).toEqual([batch, M, N]);
      expect(await maxAbsDiff(got, want), `${tA} ${tB}`).toBeLessThan(1e-4 * Math.sqrt(K));
      got.dispose();
      expect(tf.memory().numTensors).toBe(before);
      const w = tf.tensor3d(seeded(batch * M * N, 9), [batch, M, N]);
      const [gf, gr] = fastAndReference(() => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matmulFast(x as tf.Tensor3D, y as tf.Tensor3D, { transposeA: tA, transposeB: tB }), w)))([a, b]));
      expect(gf[0]!.shape).toEqual(a.shape);
      expect(gf[1]!.shape).toEqual(b.shape);
      for (let i = 0; i < 2; i++) expect(await maxAbsDiff(gf[i]!, gr[i]!), `grad ${i} ${tA} ${tB}`).toBeLessThan(1e-4 * Math.sqrt(Math.max(M, N, K) * batch));
      tf.dispose([a, b, want, w, ...gf, ...gr]);
    }
    if (backend === 'webgpu') expect(tf.getKernel('MatMulFast', 'webgpu')).toBeDefined();
  });

  it('2-D operands and typed shape errors', async () => {
    const a = tf.tensor2d(seeded(12, 1), [3, 4]);
    const b = tf.tensor2d(seeded(8, 2), [4, 2]);
    const c = matmulFast(a, b, { precision: 'f16' });
    expect(c.shape).toEqual([3, 2]);
    expect(await maxAbsDiff(c, tf.matMul(a, b))).toBeLessThan(1e-5);
    expect(() => matmulFast(a, a)).toThrow(expect.objectContaining({ code: 'shape' }));
    tf.dispose([a, b, c]);
  });
});

it('the tiled program bakes only the transposes and whether the tiles fit', () => {
  const a = new MatMulTiledProgram([1, 5, 7], false, true, 3);
  const b = new MatMulTiledProgram([4, 300, 129], false, true, 64);
  expect(a.shaderKey).toBe(b.shaderKey);
  expect(a.getUserCode()).toBe(b.getUserCode());
  expect(new MatMulTiledProgram([1, 5, 7], true, true, 3).shaderKey).not.toBe(a.shaderKey);
  // the unchecked path only where every tile is full, and under its own key
  const fit = new MatMulTiledProgram([1, 256, 128], false, false, 32);
  expect(fit.shaderKey).not.toBe(new MatMulTiledProgram([1, 256, 128], false, false, 33).shaderKey);
  expect(fit.shaderKey).toBe(new MatMulTiledProgram([3, 128, 512], false, false, 16).shaderKey);
  expect(new MatMulTiledProgram([1, 256, 130], false, false, 32).shaderKey).not.toBe(fit.shaderKey);
  // 64-tiles: their own key, four times the workgroups of the same grid
  const small = new MatMulTiledProgram([1, 256, 128], false, false, 32, null, 64);
  expect(small.shaderKey).not.toBe(fit.shaderKey);
  expect(small.dispatch).toEqual([2, 4, 1]);
  expect(fit.dispatch).toEqual([1, 2, 1]);
  expect(() => new MatMulTiledProgram([1, 8, 64], false, false, 32, { activation: 'linear', hasBias: false, hasResidual: false, gated: true }, 64)).toThrow(/gated/);
});

it('grids too small to fill a GPU take 64-tiles; gated epilogues always 128', () => {
  expect(matmulTile(1, 4096, 192)).toBe(64); // 32 × 2 = 64 tiles of 128
  expect(matmulTile(1, 4096, 4096)).toBe(128);
  expect(matmulTile(8, 4096, 768)).toBe(128); // 8 × 32 × 6
  expect(matmulTile(1, 4096, 192, true)).toBe(128);
});
