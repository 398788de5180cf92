/**
 * 2D sliding-window inference over the slices of a volume with Gaussian blending (as MONAI's
 * SlidingWindowInferer with mode 'gaussian'), argmax taken slice by slice into a uint8/uint16 label map:
 * float logits exist for one slice at a time, never for the whole volume.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';

export interface SlidingWindowOptions {
  /** Window size [height, width]; a slice that fits is run whole. */
  roi: [number, number];
  /** Fraction of the window shared with its neighbour (0 ≤ overlap < 1). */
  overlap?: number;
  /** Windows per model call. */
  batch?: number;
  /** Gaussian sigma as a fraction of the window size (MONAI: 0.125). */
  sigmaScale?: number;
  onProgress?: (done: number, total: number) => void;
}

/** A model maps [n, h, w, cin] to logits [n, h, w, classes]. */
export type SliceModel = (x: tf.Tensor4D) => tf.Tensor4D;

/** Window start offsets along one axis covering [0, size) with the given stride; the last is flush. */
export function windowStarts(size: number, roi: number, overlap: number): number[] {
  if (size <= roi) return [0];
  const stride = Math.max(1, Math.floor(roi * (1 - overlap)));
  const starts: number[] = [];
  for (let s = 0; s + roi < size; s += stride) starts.push(s);
  starts.push(size - roi);
  return [...new Set(starts)];
}

/** Separable Gaussian importance map, normalised to a maximum of 1 (MONAI's compute_importance_map). */
export function gaussianMap(h: number, w: number, sigmaScale = 0.125): Float32Array {
  const g = (n: number) => {
    const sigma = n * sigmaScale;
    const c = (n - 1) / 2;
    return Array.from({ length: n }, (_, i) => Math.exp(-((i - c) ** 2) / (2 * sigma * sigma)));
  };
  const gy = g(h);
  const gx = g(w);
  const out = new Float32Array(h * w);
  let max = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) max = Math.max(max, (out[y * w + x] = gy[y]! * gx[x]!));
  for (let i = 0; i < out.length; i++) out[i] = Math.max(out[i]! / max, 1e-3);
  return out;
}

/**
 * Blended logits of one slice [h, w, classes] (x fastest within a row). `slice` is [h, w, cin] row-major.
 */
export async function slidingWindowSlice(slice: Float32Array, h: number, w: number, cin: number, model: SliceModel, opts: SlidingWindowOptions): Promise<{ logits: Float32Array; classes: number }> {
  const [rh, rw] = [Math.min(opts.roi[0], h), Math.min(opts.roi[1], w)];
  const overlap = opts.overlap ?? 0.25;
  if (overlap < 0 || overlap >= 1) throw new GatedError('config', `overlap must be in [0, 1); got ${overlap}`);
  const ys = windowStarts(h, rh, overlap);
  const xs = windowStarts(w, rw, overlap);
  const windows = ys.flatMap((y) => xs.map((x) => [y, x] as const));
  const weight = windows.length === 1 ? new Float32Array(rh * rw).fill(1) : gaussianMap(rh, rw, opts.sigmaScale);
  const batch = Math.max(1, opts.batch ?? 4);
  let acc: Float32Array | undefined;
  const norm = new Float32Array(h * w);
  let classes = 0;
  for (let b = 0; b < windows.length; b += batch) {
    const group = windows.slice(b, b + batch);
    const input = new Float32Array(group.length * rh * rw * cin);
    group.forEach(([y0, x0], n) => {
      for (let y = 0; y < rh; y++) input.set(slice.subarray(((y0 + y) * w + x0) * cin, ((y0 + y) * w + x0 + rw) * cin), (n * rh + y) * rw * cin);
    });
    const out = tf.tidy(() => model(tf.tensor4d(input, [group.length, rh, rw, cin])));
    const data = (await out.data()) as Float32Array;
    classes = out.shape[3];
    out.dispose();
    acc ??= new Float32Array(h * w * classes);
    group.forEach(([y0, x0], n) => {
      for (let y = 0; y < rh; y++) {
        for (let x = 0; x < rw; x++) {
          const wt = weight[y * rw + x]!;
          const p = (y0 + y) * w + (x0 + x);
          norm[p] = norm[p]! + wt;
          const src = ((n * rh + y) * rw + x) * classes;
          for (let c = 0; c < classes; c++) acc![p * classes + c] = acc![p * classes + c]! + wt * data[src + c]!;
        }
      }
    });
  }
  const logits = acc!;
  for (let p = 0; p < h * w; p++) for (let c = 0; c < classes; c++) logits[p * classes + c] = logits[p * classes + c]! / norm[p]!;
  return { logits, classes };
}

/** Argmax over classes of [h*w, classes] logits, written into `out` at `offset`. */
export function argmaxInto(logits: Float32Array, classes: number, out: Uint8Array | Uint16Array, offset: number): void {
  const n = logits.length / classes;
  for (let p = 0; p < n; p++) {
    let best = 0;
    let bv = logits[p * classes]!;
    for (let c = 1; c < classes; c++) {
      const v = logits[p * classes + c]!;
      if (v > bv) {
        bv = v;
        best = c;
      }
    }
    out[offset + p] = best;
  }
}

/**
 * Label map of a whole volume [nx, ny, nz] (x fastest): each axial slice through the model, blended,
 * argmaxed into uint8 (≤256 classes) or uint16.
 */
export async function segmentVolumeSlices(data: Float32Array, shape: readonly number[], model: SliceModel, opts: SlidingWindowOptions): Promise<Uint8Array | Uint16Array> {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const n2 = nx * ny;
  let labels: Uint8Array | Uint16Array | undefined;
  for (let k = 0; k < nz; k++) {
    // rows of the volume slice are y, columns x: exactly an [ny, nx, 1] image
    const { logits, classes } = await slidingWindowSlice(data.subarray(k * n2, (k + 1) * n2), ny, nx, 1, model, opts);
    labels ??= classes <= 256 ? new Uint8Array(n2 * nz) : new Uint16Array(n2 * nz);
    argmaxInto(logits, classes, labels, k * n2);
    opts.onProgress?.(k + 1, nz);
  }
  return labels ?? new Uint8Array(0);
}
