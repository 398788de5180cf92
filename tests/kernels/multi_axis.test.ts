/**
 * MAXIM block/grid partitions: the reference against the index formula of architectures.md §3.2 written
 * out in plain loops, exact inverses, the WebGPU gather (SwiftShader) against the reference forward and
 * backward, shape errors, no leaks, one shader for every size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { blockPartition, blockUnpartition, gridPartition, gridUnpartition } from '../../kernels/multi_axis/op.ts';
import { MultiAxisProgram } from '../../kernels/multi_axis/webgpu_program.ts';
import { describeBackends, fastAndReference } from '../_helpers/backends.ts';
import { maxAbsDiff, seeded } from '../_helpers/close.ts';

/** out[n, gy·gw+gx, py·fw+px, c] = x[n, gy·fh+py, gx·fw+px, c], by loops. */
function blockByLoops(x: Float32Array, [N, H, W, C]: number[], fh: number, fw: number): Float32Array {
  const [gh, gw] = [H! / fh, W! / fw];
  const out = new Float32Array(x.length);
  let o = 0;
  for (let n = 0; n < N!; n++)
    for (let gy = 0; gy < gh; gy++)
      for (let gx = 0; gx < gw; gx++)
        for (let py = 0; py < fh; py++)
          for (let px = 0; px < fw; px++)
            for (let c = 0; c < C!; c++) out[o++] = x[((n * H! + gy * fh + py) * W! + gx * fw + px) * C! + c]!;
  return out;
}

// [N, H, W, C, fh, fw]: odd channels (scalar path), channels of 8 (vec4 path), non-square blocks, batch > 1
const CASES: [number, number, number, number, number, number][] = [
  [1, 6, 4, 3, 3, 2],
  [2, 4, 6, 8, 2, 3],
  [1, 5, 5, 1, 5, 1],
];

describeBackends('multi-axis partition', ['cpu', 'wasm', 'webgpu'], (backend) => {
  it.each(CASES)('block/grid of [%i, %i, %i, %i] with %ix%i blocks', async (N, H, W, C, fh, fw) => {
    const data = seeded(N * H * W * C, H * 7 + C);
    const x = tf.tensor4d(data, [N, H, W, C]);
    const before = tf.memory().numTensors;
    const want = blockByLoops(data, [N, H, W, C], fh, fw);
    const [fast, ref] = fastAndReference(() => blockPartition(x, [fh, fw]));
    expect(fast.shape).toEqual([N, (H / fh) * (W / fw), fh * fw, C]);
    expect(await maxAbsDiff(fast, want)).toBe(0);
    expect(await maxAbsDiff(ref, want)).toBe(0);
    // grid partition with the complementary grid is the same permutation
    const grid = gridPartition(x, [H / fh, W / fw]);
    expect(await maxAbsDiff(grid, want)).toBe(0);
    const back = blockUnpartition(fast, [fh, fw], [H, W]);
    const backGrid = gridUnpartition(grid, [H / fh, W / fw], [H, W]);
    expect(await maxAbsDiff(back, x)).toBe(0);
    expect(await maxAbsDiff(backGrid, x)).toBe(0);
    tf.dispose([fast, ref, grid, back, backGrid]);
    expect(tf.memory().numTensors).toBe(before);
    // gradient of a weighted sum: the weights gathered back to the image
    const w = tf.tensor4d(seeded(N * H * W * C, 5), [N, (H / fh) * (W / fw), fh * fw, C]);
    const [gFast, gRef] = fastAndReference(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(blockPartition(t as tf.Tensor4D, [fh, fw]), w)))(x));
    const wBack = blockUnpartition(w, [fh, fw], [H, W]);
    expect(await maxAbsDiff(gFast, wBack)).toBe(0);
    expect(await maxAbsDiff(gRef, wBack)).toBe(0);
    tf.dispose([x, w, gFast, gRef, wBack]);
    if (backend === 'webgpu') expect(tf.getKernel('MultiAxisPartition', 'webgpu')).toBeDefined();
  });

  it('rejects sizes that do not divide', () => {
    const x = tf.zeros([1, 6, 4, 2]) as tf.Tensor4D;
    expect(() => blockPartition(x, [4, 2])).toThrow(expect.objectContaining({ code: 'shape' }));
    expect(() => gridPartition(x, [2, 3])).toThrow(/divisible/);
    expect(() => blockUnpartition(tf.zeros([1, 3, 4, 2]) as tf.Tensor4D, [2, 2], [6, 4])).toThrow(/must be/);
    x.dispose();
  });
});

it('the gather program bakes only its direction and channel vector width', () => {
  const a = new MultiAxisProgram([1, 6, 8, 8], false);
  const b = new MultiAxisProgram([3, 20, 12, 16], false);
  expect(a.shaderKey).toBe(b.shaderKey);
  expect(a.getUserCode()).toBe(b.getUserCode());
  expect(new MultiAxisProgram([1, 6, 8, 3], false).shaderKey).not.toBe(a.shaderKey);
  expect(new MultiAxisProgram([1, 6, 8, 8], true).shaderKey).not.toBe(a.shaderKey);
});
