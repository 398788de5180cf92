/** Sliding-window stitching equals whole-image inference where both fit; windows cover every pixel. */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { argmaxInto, gaussianMap, segmentVolumeSlices, slidingWindowSlice, windowStarts } from '../../pipelines/sliding_window.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// A pointwise model (1x1 "conv"): its output at a pixel depends on that pixel only, so any correct
// blending (weights normalised per pixel) must reproduce whole-image inference exactly.
const W = tf.tensor2d([[1.5, -2, 0.25]], [1, 3]);
const B = tf.tensor1d([0.1, 4, -1]);
const pointwise = (x: tf.Tensor4D) => tf.tidy(() => tf.reshape(tf.add(tf.matMul(tf.reshape(x, [-1, 1]), W), B), [x.shape[0], x.shape[1], x.shape[2], 3]) as tf.Tensor4D);
// A 3x3 box filter (translation-equivariant, receptive field 1 pixel): equal away from window borders.
const box = (x: tf.Tensor4D) => tf.tidy(() => tf.concat([tf.avgPool(x, 3, 1, 'same'), tf.add(tf.neg(tf.avgPool(x, 3, 1, 'same')), 2)], 3) as tf.Tensor4D);

function image(h: number, w: number): Float32Array {
  return Float32Array.from({ length: h * w }, (_, i) => Math.sin(i * 0.37) * 3 + ((i % w) / w) * 2);
}

describe('sliding window', () => {
  it('window starts cover the axis and end flush', () => {
    expect(windowStarts(100, 32, 0.25)).toEqual([0, 24, 48, 68]);
    expect(windowStarts(20, 32, 0.5)).toEqual([0]);
    for (const [n, r, o] of [[257, 64, 0.5], [65, 64, 0], [1000, 96, 0.75]] as const) {
      const s = windowStarts(n, r, o);
      expect(s[0]).toBe(0);
      expect(s.at(-1)! + r).toBe(n);
      for (let i = 1; i < s.length; i++) expect(s[i]! - s[i - 1]!).toBeLessThanOrEqual(r);
    }
  });

  it('gaussian map peaks at 1 in the centre and is symmetric', () => {
    const g = gaussianMap(9, 7);
    expect(g[4 * 7 + 3]).toBeCloseTo(1, 6);
    expect(g[0]).toBeCloseTo(g[8 * 7 + 6]!, 6);
    expect(g[0]).toBeLessThan(0.1);
  });

  it('pointwise model: tiled logits equal whole-image logits (exact up to float rounding)', async () => {
    const [h, w] = [45, 70];
    const img = image(h, w);
    const whole = await slidingWindowSlice(img, h, w, 1, pointwise, { roi: [h, w] });
    const tiled = await slidingWindowSlice(img, h, w, 1, pointwise, { roi: [16, 24], overlap: 0.5, batch: 3 });
    let max = 0;
    for (let i = 0; i < whole.logits.length; i++) max = Math.max(max, Math.abs(whole.logits[i]! - tiled.logits[i]!));
    expect(max).toBeLessThan(1e-5);
  });

  it('3x3 model: labels equal whole-image labels away from window seams, and nearly everywhere', async () => {
    const [h, w] = [40, 52];
    const img = image(h, w);
    const a = await slidingWindowSlice(img, h, w, 1, box, { roi: [h, w] });
    const b = await slidingWindowSlice(img, h, w, 1, box, { roi: [20, 20], overlap: 0.5 });
    const la = new Uint8Array(h * w);
    const lb = new Uint8Array(h * w);
    argmaxInto(a.logits, 2, la, 0);
    argmaxInto(b.logits, 2, lb, 0);
    let same = 0;
    for (let i = 0; i < la.length; i++) same += la[i] === lb[i] ? 1 : 0;
    expect(same / la.length).toBeGreaterThan(0.97);
  });

  it('segments a volume slice by slice into uint8 labels without leaking tensors', async () => {
    const shape = [30, 20, 4];
    const data = Float32Array.from({ length: 30 * 20 * 4 }, (_, i) => Math.cos(i));
    const before = tf.memory().numTensors;
    const ticks: number[] = [];
    const labels = await segmentVolumeSlices(data, shape, pointwise, { roi: [16, 16], overlap: 0.25, onProgress: (d) => ticks.push(d) });
    expect(tf.memory().numTensors).toBe(before);
    expect(labels).toBeInstanceOf(Uint8Array);
    expect(ticks).toEqual([1, 2, 3, 4]);
    // pointwise: class = argmax(1.5v+0.1, -2v+4, 0.25v-1) for each voxel value v
    for (let i = 0; i < data.length; i += 37) {
      const v = data[i]!;
      const s = [1.5 * v + 0.1, -2 * v + 4, 0.25 * v - 1];
      expect(labels[i]).toBe(s.indexOf(Math.max(...s)));
    }
  });
});
