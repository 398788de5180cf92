/**
 * The bind-group cache of our WebGPU device: the same dispatch over the same pooled buffers finds its bind group
 * again, and results stay right when pooled buffers are handed out with new contents, to other shapes, or when
 * the cache is off.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { bindGroupCache } from '../../kernels/_webgpu_internal.ts';

it('webgpu (SwiftShader): repeated work reuses bind groups and every result is still right', async () => {
  await selectDevice('webgpu', { allowSoftware: true });
  // each value repeated 1000 times: tensors this small would otherwise be computed on the CPU by tfjs-webgpu
  const N = 1000;
  const run = async (a: number[], b: number[]) => {
    const x = tf.tensor1d(a.flatMap((v) => Array<number>(N).fill(v)));
    const y = tf.tensor1d(b.flatMap((v) => Array<number>(N).fill(v)));
    const z = tf.tidy(() => tf.mul(tf.add(x, y), 2));
    const all = await z.data();
    tf.dispose([x, y, z]);
    const out = a.map((_, i) => all[i * N]!);
    expect(all.every((v, i) => v === out[Math.floor(i / N)])).toBe(true);
    return out;
  };
  expect(await run([1, 2, 3], [10, 20, 30])).toEqual([22, 44, 66]);
  const before = { ...bindGroupCache };
  // same shapes, new contents in the same pooled buffers: found again, computed from the new contents
  for (let i = 0; i < 4; i++) expect(await run([i, i + 1, i + 2], [1, 1, 1])).toEqual([2 * (i + 1), 2 * (i + 2), 2 * (i + 3)]);
  expect(bindGroupCache.hits).toBeGreaterThan(before.hits);
  // other sizes (other buffers) in between, then the first shape again
  expect(await run([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])).toEqual([12, 12, 12, 12, 12]);
  expect(await run([7, 8, 9], [0, 0, 1])).toEqual([14, 16, 20]);
  // off: same results through fresh bind groups
  bindGroupCache.enabled = false;
  try {
    const hits = bindGroupCache.hits;
    expect(await run([3, 2, 1], [1, 2, 3])).toEqual([8, 8, 8]);
    expect(bindGroupCache.hits).toBe(hits);
  } finally {
    bindGroupCache.enabled = true;
  }
});
