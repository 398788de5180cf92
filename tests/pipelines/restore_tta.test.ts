/**
 * restore --tta: the mean over the 8 flips and quarter turns, each output mapped back, checked against an oracle
 * that only moves pixels by index (no tf), on square and non-square slices, padded, tiled and whole.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Volume } from '../../io/volume.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { restoreVolume } from '../../pipelines/restore.ts';
import type { TaskModel } from '../../pipelines/task_model.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

/** A plane as the model sees it: rows of `w` values, one channel. */
type PlaneFn = (p: Float32Array, h: number, w: number) => Float32Array;

/**
 * Not equivariant in two ways: it mixes in the right-hand neighbour (zero past the edge) and adds a ramp
 * that depends on where a pixel sits in the frame it was given.
 */
const lopsided: PlaneFn = (p, h, w) => {
  const out = new Float32Array(h * w);
  for (let a = 0; a < h; a++)
    for (let b = 0; b < w; b++) out[a * w + b] = p[a * w + b]! + 0.5 * (b + 1 < w ? p[a * w + b + 1]! : 0) + 0.25 * (a / h) + 0.1 * (b / w) ** 2;
  return out;
};

function lopsidedTf(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const right = tf.pad(tf.slice(x, [0, 0, 1, 0], [n, h, w - 1, c]), [[0, 0], [0, 0], [0, 1], [0, 0]]);
    const rows = tf.reshape(tf.div(tf.range(0, h), h), [1, h, 1, 1]);
    const cols = tf.reshape(tf.square(tf.div(tf.range(0, w), w)), [1, 1, w, 1]);
    return tf.add(tf.add(x, tf.mul(right, 0.5)), tf.add(tf.mul(rows, 0.25), tf.mul(cols, 0.1))) as tf.Tensor4D;
  });
}

/** Shift-invariant but direction-dependent (right and lower neighbours, zero past the edge): reach 1 pixel. */
const leaning: PlaneFn = (p, h, w) => {
  const out = new Float32Array(h * w);
  for (let a = 0; a < h; a++)
    for (let b = 0; b < w; b++) out[a * w + b] = p[a * w + b]! + 0.5 * (b + 1 < w ? p[a * w + b + 1]! : 0) - 0.3 * (a + 1 < h ? p[(a + 1) * w + b]! : 0);
  return out;
};

function leaningTf(x: tf.Tensor4D): tf.Tensor4D {
  const k = tf.tensor4d([0, 0, 0, 0, 1, 0.5, 0, -0.3, 0], [3, 3, 1, 1]);
  try {
    return tf.conv2d(x, k, 1, 'same');
  } finally {
    k.dispose();
  }
}

/** A 3×3 blur with the square's symmetries, zero padding: the same on every flipped or turned plane. */
function symmetricTf(x: tf.Tensor4D): tf.Tensor4D {
  const k = tf.tensor4d([0.05, 0.1, 0.05, 0.1, 0.4, 0.1, 0.05, 0.1, 0.05], [3, 3, 1, 1]);
  try {
    return tf.conv2d(x, k, 1, 'same');
  } finally {
    k.dispose();
  }
}

/**
 * The oracle. Each symmetry is a map from a pixel (a, b) of the transformed plane to the source pixel (i, j)
 * it came from: sides swapped or not, then rows and columns reversed or not — the 8 of them. The model's output
 * at (a, b) goes back to (i, j) through the same map, so no inverse is written down.
 */
function selfEnsembleOracle(img: Float32Array, h: number, w: number, f: PlaneFn): Float32Array {
  const sum = new Float64Array(h * w);
  for (const swap of [false, true])
    for (const flipRows of [false, true])
      for (const flipCols of [false, true]) {
        const [th, tw] = swap ? [w, h] : [h, w];
        const source = (a: number, b: number) => {
          let [i, j] = swap ? [b, a] : [a, b];
          if (flipRows) i = h - 1 - i;
          if (flipCols) j = w - 1 - j;
          return i * w + j;
        };
        const t = new Float32Array(th * tw);
        for (let a = 0; a < th; a++) for (let b = 0; b < tw; b++) t[a * tw + b] = img[source(a, b)]!;
        const y = f(t, th, tw);
        for (let a = 0; a < th; a++) for (let b = 0; b < tw; b++) sum[source(a, b)]! += y[a * tw + b]! / 8;
      }
  return Float32Array.from(sum);
}

/** `f` on the plane padded to the size multiple by repeating the last row and column (as tiling pads), cropped back. */
function padded(f: PlaneFn, multipleOf: number): PlaneFn {
  return (p, h, w) => {
    const [ph, pw] = [Math.ceil(h / multipleOf) * multipleOf, Math.ceil(w / multipleOf) * multipleOf];
    const big = new Float32Array(ph * pw);
    for (let i = 0; i < ph; i++) for (let j = 0; j < pw; j++) big[i * pw + j] = p[Math.min(i, h - 1) * w + Math.min(j, w - 1)]!;
    const y = f(big, ph, pw);
    const out = new Float32Array(h * w);
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) out[i * w + j] = y[i * pw + j]!;
    return out;
  };
}

function fakeModel(predict: (x: tf.Tensor4D) => tf.Tensor4D, multipleOf: number): TaskModel {
  return {
    manifest: {
      name: 'tta_fake',
      task: 'restore',
      input: { channels: 1, context: 0, multipleOf, normalization: { kind: 'window', lo: 0, hi: 1 }, canonical: false },
    },
    predict,
  } as unknown as TaskModel;
}

/** float32 slices of h rows × w columns, values in [0, 1) with no symmetry (the window lo..hi = 0..1 keeps them as they are). */
function volumeOf(h: number, w: number, nz: number, seed: number): Volume {
  const data = new Float32Array(h * w * nz);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    data[i] = s / 2147483648;
  }
  const affine = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  return { data, shape: [w, h, nz], spacing: [1, 1, 1], affine, dtype: 'float32', meta: { format: 'nifti', components: 'scalar', warnings: [] } };
}

function slice(v: Volume, z: number, h: number, w: number): Float32Array {
  return Float32Array.from(v.data.subarray(z * h * w, (z + 1) * h * w));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('restore --tta', () => {
  it('is the mean of the 8 flipped and turned predictions mapped back, on every slice', async () => {
    const [h, w, nz] = [32, 32, 2];
    const v = volumeOf(h, w, nz, 7);
    const model = fakeModel(lopsidedTf, 8);
    const before = tf.memory().numTensors;
    const tta = await restoreVolume(v, model, { tta: true });
    expect(tf.memory().numTensors).toBe(before);
    const plain = await restoreVolume(v, model);
    for (let z = 0; z < nz; z++) {
      const src = slice(v, z, h, w);
      const got = slice(tta, z, h, w);
      expect(maxAbsDiff(got, selfEnsembleOracle(src, h, w, lopsided))).toBeLessThan(1e-5);
      // the model is far from equivariant, so the ensemble is not the plain prediction
      expect(maxAbsDiff(slice(plain, z, h, w), lopsided(src, h, w))).toBeLessThan(1e-5);
      expect(maxAbsDiff(got, slice(plain, z, h, w))).toBeGreaterThan(0.1);
    }
  });

  it('keeps shape and geometry of a non-square slice padded to the size multiple (24 rows × 40 columns)', async () => {
    const [h, w] = [24, 40];
    const v = volumeOf(h, w, 1, 3);
    const out = await restoreVolume(v, fakeModel(lopsidedTf, 16), { tta: true }); // padded to 32×48, turned to 48×32
    expect(out.shape).toEqual([w, h, 1]);
    expect(out.affine).toEqual(v.affine);
    expect(out.spacing).toEqual(v.spacing);
    expect(out.dtype).toBe('float32');
    // the slice is padded first and the padded plane is what gets flipped and turned
    const want = padded((p, ph, pw) => selfEnsembleOracle(p, ph, pw, lopsided), 16)(slice(v, 0, h, w), h, w);
    expect(maxAbsDiff(slice(out, 0, h, w), want)).toBeLessThan(1e-5);
  });

  it('runs on each tile of a non-square tiling and matches the whole-slice ensemble', async () => {
    const [h, w] = [24, 40];
    const v = volumeOf(h, w, 1, 5);
    // tile 32 on 24 rows: 24×32 tiles at columns 0 and 8; the dropped margin (2) covers the ensemble's reach (1)
    const before = tf.memory().numTensors;
    const out = await restoreVolume(v, fakeModel(leaningTf, 8), { tta: true, tile: 32, overlap: 8 });
    expect(tf.memory().numTensors).toBe(before);
    expect(out.shape).toEqual([w, h, 1]);
    const src = slice(v, 0, h, w);
    const want = selfEnsembleOracle(src, h, w, leaning);
    expect(maxAbsDiff(slice(out, 0, h, w), want)).toBeLessThan(1e-5);
    expect(maxAbsDiff(want, leaning(src, h, w))).toBeGreaterThan(0.1);
  });

  it('changes nothing for a model that commutes with flips and turns', async () => {
    const [h, w] = [24, 40];
    const v = volumeOf(h, w, 2, 9);
    for (const tile of [0, 32]) {
      const model = fakeModel(symmetricTf, 16);
      const opts = tile ? { tile, overlap: 8 } : {};
      const plain = await restoreVolume(v, model, opts);
      const tta = await restoreVolume(v, model, { ...opts, tta: true });
      expect(maxAbsDiff(tta.data, plain.data)).toBeLessThan(1e-6);
      expect(maxAbsDiff(plain.data, v.data)).toBeGreaterThan(0.1);
    }
  });
});
