/**
 * DeiT's attention in query row blocks (used when the score tensor would pass WebGPU's binding limit) equals the
 * single-call attention, including a last block shorter than the others.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { attention, MAX_SCORE_ELEMENTS } from '../../backbones/deit.ts';
import { selectDevice } from '../../kernels/backend.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

describe('DeiT attention in row blocks', () => {
  it('equals softmax(q kᵀ s) v computed in one call', async () => {
    // 2 x 3 heads x 50 keys with room for 6 x 50 x 7 scores: blocks of 7 query rows, the last one of 1
    const N = 50;
    const max = 6 * N * 7;
    const q = tf.randomNormal([2, 3, N, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
    const k = tf.randomNormal([2, 3, N, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
    const v = tf.randomNormal([2, 3, N, 4], 0, 1, 'float32', 3) as tf.Tensor4D;
    const rows = Math.floor(max / (6 * N));
    expect(rows).toBeLessThan(N);
    expect(N % rows).not.toBe(0);
    // reference on a sample of query rows only (the full score matrix is what the blocks avoid)
    const pick = [0, rows - 1, rows, N - 1];
    const got = attention(q, k, v, 0.5, max);
    const whole = attention(q, k, v, 0.5);
    expect(MAX_SCORE_ELEMENTS).toBeGreaterThan(6 * N * N);
    expect(await tf.max(tf.abs(tf.sub(got, whole))).data().then((d) => d[0])).toBeLessThan(1e-5);
    expect(got.shape).toEqual([2, 3, N, 4]);
    for (const r of pick) {
      const qr = tf.slice(q, [0, 0, r, 0], [-1, -1, 1, -1]);
      const want = tf.matMul(tf.softmax(tf.mul(tf.matMul(qr, k, false, true), 0.5)), v);
      const diff = await tf.max(tf.abs(tf.sub(tf.slice(got, [0, 0, r, 0], [-1, -1, 1, -1]), want))).data();
      expect(diff[0]).toBeLessThan(1e-5);
    }
    tf.dispose([q, k, v, got]);
  });
});
