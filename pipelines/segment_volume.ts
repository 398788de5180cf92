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
    // CPU backends keep activations in host memory: about 256k pixels per call keeps each full-resolution map
    // near 64 MiB. On a GPU they live in device memory and the cost is per call, so calls are made large.
    const pixels = tf.getBackend() === 'webgpu' || tf.getBackend() === 'tensorflow' ? 4096 * 1024 : 512 * 512;
    const batch = Math.max(1, opts.batch ?? Math.max(1, Math.floor(pixels / (Hp * Wp))));
    for (let b = 0; b < slices.length; b += batch) {
      const group = slices.slice(b, b + batch);
      // the stored slices the group needs go up once; normalising, stacking neighbours and the argmax run on
      // the device, and only uint labels come back
      const z0 = Math.max(0, Math.min(...group) - context);
      const z1 = Math.min(nz - 1, Math.max(...group) + context);
      const raw = float32Range(data, z0 * plane, (z1 + 1) * plane);
      const idx = Int32Array.from(group.flatMap((z) => Array.from({ length: C }, (_, c) => Math.min(nz - 1, Math.max(0, z + c - context)) - z0)));
      const [lab, nan] = tf.tidy(() => {
        let v: tf.Tensor = tf.tensor3d(raw, [z1 - z0 + 1, ny, nx]);
        if (norm) v = normalizeTensor(v, norm);
        const x = tf.transpose(tf.reshape(tf.gather(v, tf.tensor1d(idx, 'int32')), [group.length, C, ny, nx]), [0, 2, 3, 1]) as tf.Tensor4D;
        const p = toNative(probs(toModelGrid(x)));
        if (p.shape[3] !== K) throw new GatedError('internal', `model '${model.manifest.name}' gave ${p.shape[3]} channels for ${K} classes`);
        return [tf.argMax(p, -1), tf.sum(tf.cast(tf.isNaN(p), 'float32'))];
      });
      try {
        const [l, bad] = await Promise.all([lab.data(), nan.data()]);
        if (bad[0]! > 0) throw new GatedError('kernel', `model '${model.manifest.name}' produced non-finite outputs on this device`);
        group.forEach((z, i) => labels.set(l.subarray(i * plane, (i + 1) * plane), z * plane));
      } finally {
        tf.dispose([lab, nan]);
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

/** Stored values [from, to) as float32 (a native conversion for typed arrays). */
function float32Range(data: ArrayLike<number>, from: number, to: number): Float32Array {
  const sub = (data as Float32Array).subarray;
  if (typeof sub === 'function') return new Float32Array((data as Float32Array).subarray(from, to));
  return Float32Array.from({ length: to - from }, (_, i) => data[from + i]!);
}

/** The Normalizer as tensor ops (same arithmetic as preprocess.normalized). */
function normalizeTensor(v: tf.Tensor, n: Normalizer): tf.Tensor {
  const real = n.slope === 1 && n.inter === 0 ? v : tf.add(tf.mul(v, n.slope), n.inter);
  const clipped = Number.isFinite(n.lo) || Number.isFinite(n.hi) ? tf.clipByValue(real, Number.isFinite(n.lo) ? n.lo : -3.4e38, Number.isFinite(n.hi) ? n.hi : 3.4e38) : real;
  const out = tf.add(tf.mul(clipped, n.scale), n.offset);
  return n.keepZero ? tf.where(tf.equal(real, 0), tf.zerosLike(out), out) : out;
}

// A model that returns NaN must fail loudly, not write an empty mask that looks like a result.
function checkFinite(p: Float32Array, name: string): void {
  for (let i = 0; i < p.length; i += 97) if (!Number.isFinite(p[i]!)) throw new GatedError('kernel', `model '${name}' produced non-finite outputs on this device`);
}
