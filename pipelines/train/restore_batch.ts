/**
 * Training batches for restoration: noise (and blur) on clean planes, and random crops with flips and quarter
 * turns. Plain arrays and a seeded generator only — no tensors — so the same code makes batches on the main
 * thread and in the batch thread (restore_batch_thread.ts), and both give the same batch for the same state.
 */
import { GatedError } from '../../core/errors.ts';
import { Rng } from './rng.ts';

export interface RestoreImage {
  name: string;
  h: number;
  w: number;
  /** [h, w] row-major, 0..1. */
  clean: Float32Array;
  /** Paired degraded version, when the data has one. */
  noisy?: Float32Array;
  /** Steps of the stored type's range when the plane is scaled by it (8-bit: 255, 16-bit images: 65535). */
  levels?: number;
}

export interface DegradeConfig {
  /** Noise σ range on a 0-255 scale. */
  sigma: [number, number];
  /** Probability that the noise is Rician (magnitude of complex Gaussian noise, as in MR magnitude images). */
  ricianP: number;
  /** Probability of a Gaussian blur before the noise, and its σ range in pixels. */
  blurP: number;
  blurSigma: [number, number];
  /** Round the degraded image to its type's steps and clip it to the type's range, as storing a noisy 8- or
   *  16-bit image does. Without it a model never sees the clipped noise of dark and bright regions (its mean
   *  is biased: up near black, down near white) and leaves that bias in its output. */
  store?: boolean;
}

export const DENOISE_DEGRADE: DegradeConfig = { sigma: [5, 50], ricianP: 0.25, blurP: 0, blurSigma: [0.5, 2], store: true };
export const DEBLUR_DEGRADE: DegradeConfig = { sigma: [0, 5], ricianP: 0, blurP: 1, blurSigma: [0.5, 2.5], store: true };
/** What validation and the shipped model's test apply: Gaussian σ 25, stored in the image's type. */
export const VALIDATION_DEGRADE: DegradeConfig = { sigma: [25, 25], ricianP: 0, blurP: 0, blurSigma: [0, 0], store: true };

/** Adds noise (and blur) to a clean plane: Gaussian or Rician, σ on a 0-255 scale; with `cfg.store` and the
 *  plane's `levels`, the result is what an image of that type would hold. */
export function degrade(clean: Float32Array, h: number, w: number, cfg: DegradeConfig, rng: Rng, levels?: number): Float32Array {
  let x = clean;
  if (cfg.blurP > 0 && rng.next() < cfg.blurP) x = gaussianBlur(x, h, w, rng.uniform(cfg.blurSigma[0], cfg.blurSigma[1]));
  const s = rng.uniform(cfg.sigma[0], cfg.sigma[1]) / 255;
  const out = new Float32Array(x.length);
  // the magnitude written out: Math.hypot's overflow care costs more than the rest of a Rician patch
  if (rng.next() < cfg.ricianP)
    for (let i = 0; i < x.length; i++) {
      const re = x[i]! + s * rng.normal();
      const im = s * rng.normal();
      out[i] = Math.sqrt(re * re + im * im);
    }
  else for (let i = 0; i < x.length; i++) out[i] = x[i]! + s * rng.normal();
  if (cfg.store && levels)
    for (let i = 0; i < out.length; i++) {
      const v = Math.round(out[i]! * levels);
      out[i] = (v < 0 ? 0 : v > levels ? levels : v) / levels;
    }
  return out;
}

/** How a training patch picks its image: each image equally often, or in proportion to its pixels (each pixel
 *  equally likely, as when the images are cut into patches first). With many small images of one kind beside a
 *  few large ones of another, the two differ in what the model mostly sees. */
export type PatchSampling = 'image' | 'area';
export const PATCH_SAMPLING: readonly PatchSampling[] = ['image', 'area'];

/** Draws an image index: one uniform number either way, so the data stream keeps its length. */
function imagePicker(images: RestoreImage[], sample: PatchSampling): (rng: Rng) => number {
  if (sample === 'image') return (rng) => rng.int(images.length);
  const cum: number[] = [];
  let total = 0;
  for (const im of images) cum.push((total += im.h * im.w));
  return (rng) => {
    const u = rng.next() * total;
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

/** A batch of `patch`² crops with random flips and 90° rotations: x degraded, y clean, both [B, P, P, 1]. */
export function makeRestoreBatch(images: RestoreImage[], batch: number, patch: number, cfg: DegradeConfig, rng: Rng, sample: PatchSampling = 'image'): { x: Float32Array; y: Float32Array } {
  const n = patch * patch;
  const x = new Float32Array(batch * n);
  const y = new Float32Array(batch * n);
  const pick = imagePicker(images, sample);
  for (let b = 0; b < batch; b++) {
    const im = images[pick(rng)]!;
    if (im.h < patch || im.w < patch) throw new GatedError('config', `image ${im.name} (${im.w}x${im.h}) is smaller than the ${patch}-pixel training patch`);
    const y0 = rng.int(im.h - patch + 1);
    const x0 = rng.int(im.w - patch + 1);
    const flip = rng.next() < 0.5;
    const rot = rng.int(4);
    const crop = (src: Float32Array) => {
      const c = new Float32Array(n);
      for (let i = 0; i < patch; i++) for (let j = 0; j < patch; j++) c[i * patch + j] = src[(y0 + i) * im.w + x0 + j]!;
      return c;
    };
    const clean = crop(im.clean);
    const noisy = im.noisy ? crop(im.noisy) : degrade(clean, patch, patch, cfg, rng, im.levels);
    orient(clean, patch, flip, rot, y, b * n);
    orient(noisy, patch, flip, rot, x, b * n);
  }
  return { x, y };
}

// --- internal ---

/** Writes src [P, P] flipped left-right and/or rotated by rot·90° into dst at offset: (i, j) → (j, P-1-i) per turn. */
function orient(src: Float32Array, P: number, flip: boolean, rot: number, dst: Float32Array, offset: number): void {
  const m = P - 1;
  for (let i = 0; i < P; i++)
    for (let j = 0; j < P; j++) {
      const b0 = flip ? m - j : j;
      // the four turns of (i, b0) in closed form
      const k = rot === 0 ? i * P + b0 : rot === 1 ? b0 * P + m - i : rot === 2 ? (m - i) * P + m - b0 : (m - b0) * P + i;
      dst[offset + k] = src[i * P + j]!;
    }
}

function gaussianBlur(x: Float32Array, h: number, w: number, sigma: number): Float32Array {
  const r = Math.ceil(3 * sigma);
  const k = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const s = k.reduce((a, b) => a + b, 0);
  const kn = k.map((v) => v / s);
  const clamp = (v: number, n: number) => (v < 0 ? 0 : v >= n ? n - 1 : v);
  const tmp = new Float32Array(x.length);
  const out = new Float32Array(x.length);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      let a = 0;
      for (let d = -r; d <= r; d++) a += kn[d + r]! * x[i * w + clamp(j + d, w)]!;
      tmp[i * w + j] = a;
    }
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      let a = 0;
      for (let d = -r; d <= r; d++) a += kn[d + r]! * tmp[clamp(i + d, h) * w + j]!;
      out[i * w + j] = a;
    }
  return out;
}
