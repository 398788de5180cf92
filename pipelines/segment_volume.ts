/**
 * Model inference over the axial slices of a normalised canonical volume. Whole slices go through the
 * network when they fit under `maxSide` (linear backbones take 1024² untiled), larger ones by Gaussian-blended
 * sliding windows; class probabilities exist for one batch of slices at a time and are argmaxed at once into
 * a uint8/uint16 label map — there is never a float map of the whole volume.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { argmaxInto, slidingWindowSlice } from './sliding_window.ts';
import { resize } from '../heads/fpn.ts';
import { backgroundLevel, resampledSize, writeSliceStack, type SliceGeometry } from './slices.ts';
import type { Normalizer } from './preprocess.ts';
import type { TaskModel } from './task_model.ts';

export interface InferOptions {
  /** Average with the left-right mirrored prediction. */
  tta?: boolean;
  /** Slices per model call. */
  batch?: number;
  /** Slices larger than this (after padding) are tiled. */
  maxSide?: number;
  overlap?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Labels [nx·ny·nz] for the slices `zs` (all when omitted); the others stay 0. `spacing` is the volume's
 * voxel size: when the model declares an in-plane spacing, each slice is resampled to it on the device and
 * the class probabilities are resampled back before the argmax (nnU-Net's target-spacing practice). With a
 * normaliser, `data` holds stored values that are normalised slice by slice.
 */
export async function predictLabels(model: TaskModel, data: ArrayLike<number>, shape: readonly number[], spacing: readonly number[], opts: InferOptions = {}, zs?: number[], norm?: Normalizer): Promise<Uint8Array | Uint16Array> {
  const { channels, context, multipleOf: m } = model.manifest.input;
  const C = 2 * context + 1;
  if (channels !== C) throw new GatedError('config', `model '${model.manifest.name}' takes ${channels} channels per slice stack; only scalar volumes are supported`);
  const K = model.manifest.classes.length;
  const [nx = 1, ny = 1, nz = 1] = shape;
  const native: SliceGeometry = { nx, ny, nz, H: ny, W: nx };
  const [ox, oy] = resampledSize(nx, ny, spacing, model.manifest.input.spacing);
  const up = (n: number) => Math.max(m, Math.ceil(n / m) * m);
  const [Hp, Wp] = [up(oy), up(ox)];
  const slices = zs ?? Array.from({ length: nz }, (_, z) => z);
  const fill = backgroundLevel(data, norm);
  const plane = nx * ny;
  const labels = K <= 256 ? new Uint8Array(plane * nz) : new Uint16Array(plane * nz);
  const probs = (x: tf.Tensor4D) => probabilities(model, x, opts.tta ?? false);
  const toModelGrid = (x: tf.Tensor4D) => tf.pad(resize(x, oy, ox), [[0, 0], [0, Hp - oy], [0, Wp - ox], [0, 0]], fill) as tf.Tensor4D;
  const toNative = (p: tf.Tensor4D) => resize(tf.slice(p, [0, 0, 0, 0], [p.shape[0], oy, ox, K]) as tf.Tensor4D, ny, nx);
  const store = async (p: tf.Tensor4D, group: number[]) => {
    if (p.shape[3] !== K) throw new GatedError('internal', `model '${model.manifest.name}' gave ${p.shape[3]} channels for ${K} classes`);
    const v = (await p.data()) as Float32Array;
    checkFinite(v, model.manifest.name);
    group.forEach((z, i) => argmaxInto(v.subarray(i * plane * K, (i + 1) * plane * K), K, labels, z * plane));
  };
  const maxSide = opts.maxSide ?? 1024;
  if (Hp <= maxSide && Wp <= maxSide) {
    // about 256k pixels per call: full-resolution activations stay near 64 MiB each whatever the slice size
    const batch = Math.max(1, opts.batch ?? Math.max(1, Math.floor((512 * 512) / (Hp * Wp))));
    for (let b = 0; b < slices.length; b += batch) {
      const group = slices.slice(b, b + batch);
      const input = new Float32Array(group.length * plane * C);
      group.forEach((z, i) => writeSliceStack(data, native, z, context, fill, input, i * plane * C, norm));
      const out = tf.tidy(() => toNative(probs(toModelGrid(tf.tensor4d(input, [group.length, ny, nx, C])))));
      try {
        await store(out, group);
      } finally {
        out.dispose();
      }
      opts.onProgress?.(Math.min(b + batch, slices.length), slices.length);
    }
  } else {
    const roi = Math.max(m, Math.floor(maxSide / m) * m);
    const stack = new Float32Array(plane * C);
    for (let i = 0; i < slices.length; i++) {
      const z = slices[i]!;
      writeSliceStack(data, native, z, context, fill, stack, 0, norm);
      const grid = tf.tidy(() => toModelGrid(tf.tensor4d(stack, [1, ny, nx, C])));
      const gridData = (await grid.data()) as Float32Array;
      grid.dispose();
      const { logits } = await slidingWindowSlice(gridData, Hp, Wp, C, probs, { roi: [roi, roi], overlap: opts.overlap ?? 0.25, ...(opts.batch ? { batch: opts.batch } : {}) });
      const out = tf.tidy(() => toNative(tf.tensor4d(logits, [1, Hp, Wp, K])));
      try {
        await store(out, [z]);
      } finally {
        out.dispose();
      }
      opts.onProgress?.(i + 1, slices.length);
    }
  }
  return labels;
}

/** Softmax probabilities [B, H, W, K], averaged with the mirrored pass when asked. */
export function probabilities(model: TaskModel, x: tf.Tensor4D, tta: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const p = tf.softmax(model.predict(x)) as tf.Tensor4D;
    if (!tta) return p;
    const q = tf.reverse(tf.softmax(model.predict(tf.reverse(x, 2) as tf.Tensor4D)), 2);
    return tf.mul(tf.add(p, q), 0.5) as tf.Tensor4D;
  });
}

// A model that returns NaN must fail loudly, not write an empty mask that looks like a result.
function checkFinite(p: Float32Array, name: string): void {
  for (let i = 0; i < p.length; i += 97) if (!Number.isFinite(p[i]!)) throw new GatedError('kernel', `model '${name}' produced non-finite outputs on this device`);
}
