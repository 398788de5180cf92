/**
 * `train --task restore`: data and task. A data folder holds either clean images only (`clean/`, or images at
 * its top level) — degraded on the fly with Gaussian (σ 5-50 on a 0-255 scale) or Rician noise and, when asked,
 * Gaussian blur — or `clean/` + `noisy/` pairs matched by file name. 8-bit data and 16-bit images are scaled
 * by their type's range, other volumes by their own min..max, as `restore` does at inference, and
 * every slice of a volume is one training image. Colour images are reduced to luma for 1-channel models.
 * Validation: every 10th image (by name) with fixed σ=25 noise, scored by PSNR of the model's output.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { withTraining } from '../../backbones/layers/drop_path.ts';
import { GatedError } from '../../core/errors.ts';
import { loadInput } from '../../io/load.ts';
import type { Volume } from '../../io/volume.ts';
import { psnr } from '../metrics/restoration.ts';
import { buildTaskModel, type TaskModel, type TaskSpec } from '../task_model.ts';
import { runTiled } from '../tiling.ts';
import { initWeights, runLoopOptions, trainLoop, type LoopResult, type TrainRunOptions, type TrainTask } from './loop.ts';
import { checkModelName } from './presets.ts';
import { RESTORE_LOSS_DEFAULTS, restoreLoss, type RestoreLossConfig } from './restore_loss.ts';
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
const VALIDATION_DEGRADE: DegradeConfig = { sigma: [25, 25], ricianP: 0, blurP: 0, blurSigma: [0, 0], store: true };

/** Restoration recipes for `train --task restore --model`: a backbone and the residual head (or a backbone name).
 *  No stochastic depth in the denoisers: their runs are a few thousand steps, far from overfitting, where it only slows learning. */
export const RESTORE_PRESETS: Record<string, { description: string; backbone: { arch: string; config: Record<string, unknown> }; head: { kind: string; config: Record<string, unknown> }; multipleOf: number }> = {
  denoise_vig_h_small: {
    description: 'small hierarchical ViG (BiGLA) features + residual head (8 full-resolution 3x3 layers of 48 channels)',
    backbone: { arch: 'vig_h_t', config: { dims: [24, 48, 96, 160], depths: [1, 1, 2, 1], numHeads: [1, 2, 4, 4], numClasses: 0, dropPath: 0 } },
    head: { kind: 'residual', config: { dim: 48, depth: 8 } },
    multipleOf: 32,
  },
  denoise_vig_h_small_rb4: {
    description: 'small hierarchical ViG (BiGLA) features + residual head (8 full-resolution 3x3 layers of 48 channels, then 4 residual blocks); grows from denoise_vig_h_small weights with --init',
    backbone: { arch: 'vig_h_t', config: { dims: [24, 48, 96, 160], depths: [1, 1, 2, 1], numHeads: [1, 2, 4, 4], numClasses: 0, dropPath: 0 } },
    head: { kind: 'residual', config: { dim: 48, depth: 8, blocks: 4 } },
    multipleOf: 32,
  },
  denoise_vig_h: {
    description: 'hierarchical ViG (BiGLA) features + a deeper residual head (12 full-resolution 3x3 layers of 64 channels)',
    backbone: { arch: 'vig_h_t', config: { dims: [32, 64, 128, 192], depths: [1, 1, 2, 1], numHeads: [1, 2, 4, 4], numClasses: 0, dropPath: 0 } },
    head: { kind: 'residual', config: { dim: 64, depth: 12 } },
    multipleOf: 32,
  },
  restore_test: {
    description: 'tiny ViG-H + residual head for tests',
    backbone: { arch: 'test_vig_h', config: { numClasses: 0 } },
    head: { kind: 'residual', config: { dim: 8, depth: 2 } },
    multipleOf: 32,
  },
};

export function restoreSpec(model: string, name: string): TaskSpec {
  const p = RESTORE_PRESETS[model];
  checkModelName(model, 'restoration', Object.keys(RESTORE_PRESETS));
  const backbone = p ? p.backbone : { arch: model, config: { numClasses: 0 } };
  return {
    name,
    task: 'restore',
    description: p ? p.description : `${model} + residual restoration head`,
    backbone,
    head: p ? p.head : { kind: 'residual', config: {} },
    input: { channels: 1, context: 0, multipleOf: p ? p.multipleOf : 32, normalization: { kind: 'none' }, canonical: false },
    classes: [],
  };
}

const IMAGE = /\.(png|tif|tiff|jpe?g|webp|nii|nii\.gz)$/i;

/** Clean images (and paired noisy ones) of a data folder, as 0..1 gray planes. */
export async function loadRestoreDataset(dir: string): Promise<RestoreImage[]> {
  const cleanDir = (await isDir(join(dir, 'clean'))) ? join(dir, 'clean') : dir;
  const noisyDir = (await isDir(join(dir, 'noisy'))) ? join(dir, 'noisy') : null;
  const names = (await readdir(cleanDir)).filter((n) => IMAGE.test(n)).sort();
  if (names.length === 0) throw new GatedError('not_found', `no images in ${cleanDir} (expected PNG/JPEG/TIFF/NIfTI files, or clean/ [+ noisy/])`);
  const out: RestoreImage[] = [];
  for (const n of names) {
    const clean = await planes(join(cleanDir, n));
    let noisy: RestoreImage[] | null = null;
    if (noisyDir) {
      const partner = (await readdir(noisyDir)).find((m) => m === n);
      if (!partner) throw new GatedError('not_found', `clean image ${n} has no partner in ${noisyDir}`);
      noisy = await planes(join(noisyDir, partner));
      if (noisy.length !== clean.length || noisy.some((p, i) => p.h !== clean[i]!.h || p.w !== clean[i]!.w)) throw new GatedError('geometry_mismatch', `${n}: clean and noisy differ in size`);
    }
    clean.forEach((c, i) => out.push({ ...c, name: clean.length > 1 ? `${n}#${i}` : n, ...(noisy ? { noisy: noisy[i]!.clean } : {}) }));
  }
  return out;
}

/** Every 10th image by name (at least one) is held out for validation; the rest trains. */
export function splitImages(images: RestoreImage[]): { train: RestoreImage[]; val: RestoreImage[] } {
  if (images.length < 2) return { train: images, val: images };
  const val = images.filter((_, i) => i % 10 === 5 % Math.min(10, images.length));
  return { train: images.filter((im) => !val.includes(im)), val };
}

/** Adds noise (and blur) to a clean plane: Gaussian or Rician, σ on a 0-255 scale; with `cfg.store` and the
 *  plane's `levels`, the result is what an image of that type would hold. */
export function degrade(clean: Float32Array, h: number, w: number, cfg: DegradeConfig, rng: Rng, levels?: number): Float32Array {
  let x = clean;
  if (cfg.blurP > 0 && rng.next() < cfg.blurP) x = gaussianBlur(x, h, w, rng.uniform(cfg.blurSigma[0], cfg.blurSigma[1]));
  const s = rng.uniform(cfg.sigma[0], cfg.sigma[1]) / 255;
  const out = new Float32Array(x.length);
  if (rng.next() < cfg.ricianP) for (let i = 0; i < x.length; i++) out[i] = Math.hypot(x[i]! + s * rng.normal(), s * rng.normal());
  else for (let i = 0; i < x.length; i++) out[i] = x[i]! + s * rng.normal();
  if (cfg.store && levels) for (let i = 0; i < out.length; i++) out[i] = Math.min(levels, Math.max(0, Math.round(out[i]! * levels))) / levels;
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

/** Mean PSNR (dB, 0..1 range) of the model's output on the validation images with fixed σ=25 noise (seed 1), stored in each image's type. */
export async function validatePsnr(model: TaskModel, val: RestoreImage[]): Promise<{ score: number; metrics: Record<string, number> }> {
  const rng = new Rng(1);
  let sum = 0;
  let sumIn = 0;
  for (const im of val) {
    const noisy = im.noisy ?? degrade(im.clean, im.h, im.w, VALIDATION_DEGRADE, rng, im.levels);
    const { out } = await runTiled(noisy, im.h, im.w, 1, (t) => tf.tidy(() => model.predict(t)), { multipleOf: model.manifest.input.multipleOf });
    sum += psnr(im.clean, out, 1);
    sumIn += psnr(im.clean, noisy, 1);
  }
  return { score: sum / val.length, metrics: { psnr: sum / val.length, inputPsnr: sumIn / val.length } };
}

export function restoreTrainTask(train: RestoreImage[], val: RestoreImage[], o: { batch: number; patch: number; stepsPerEpoch: number; degrade: DegradeConfig; loss?: RestoreLossConfig; sample?: PatchSampling }): TrainTask {
  return {
    stepsPerEpoch: o.stepsPerEpoch,
    batchLoss: (m, rng) => {
      const { x, y } = makeRestoreBatch(train, o.batch, o.patch, o.degrade, rng, o.sample);
      const seed = rng.state; // read, not drawn: the data stream stays as it was; masks replay on resume
      return () => {
        const xt = tf.tensor4d(x, [o.batch, o.patch, o.patch, 1]);
        const yt = tf.tensor4d(y, [o.batch, o.patch, o.patch, 1]);
        return withTraining(() => restoreLoss(m.predict(xt), yt, o.loss ?? RESTORE_LOSS_DEFAULTS), { seed });
      };
    },
    validate: (m) => validatePsnr(m, val),
  };
}

export interface TrainRestoreOptions extends TrainRunOptions {
  kind?: 'denoise' | 'deblur';
  loss?: Partial<RestoreLossConfig>;
  /** How patches pick their image (default: each image equally often). */
  sample?: PatchSampling;
}

/** The whole `train --task restore` run (the counterpart of trainSegment). */
export async function trainRestore(o: TrainRestoreOptions): Promise<LoopResult & { split: string }> {
  const log = o.log ?? (() => undefined);
  const images = await loadRestoreDataset(o.data);
  const { train, val } = splitImages(images);
  const split = `${val.length} held-out image(s): ${val.map((v) => v.name).join(', ')}`;
  log(`${images.length} image(s): ${train.length} for training; validation: ${split}`);
  const spec = restoreSpec(o.model, o.name);
  const patch = o.patch ?? Math.min(128, ...train.map((t) => Math.min(t.h, t.w)));
  if (patch % spec.input.multipleOf) throw new GatedError('config', `--patch ${patch} must be a multiple of ${spec.input.multipleOf} for ${o.model}`);
  const degradeCfg = o.kind === 'deblur' ? DEBLUR_DEGRADE : DENOISE_DEGRADE;
  const loss = { ...RESTORE_LOSS_DEFAULTS, ...o.loss };
  const stepsPerEpoch = o.stepsPerEpoch ?? Math.max(1, Math.ceil(train.length / o.batch));
  const sample = o.sample ?? 'image';
  const model = buildTaskModel(spec, o.seed);
  try {
    if (o.init) await initWeights(model, o.init, log);
    const res = await trainLoop(model, restoreTrainTask(train, val, { batch: o.batch, patch, stepsPerEpoch, degrade: degradeCfg, loss, sample }), runLoopOptions(o, {
      task: 'restore',
      patch,
      data: { folder: o.data, images: images.map((i) => ({ name: i.name, shape: [i.w, i.h] })), validation: split, degradation: degradeCfg, paired: images.some((i) => i.noisy) },
      training: { preset: o.model, ...(o.init ? { init: o.init } : {}), epochs: o.epochs, batch: o.batch, patch, stepsPerEpoch, sample, seed: o.seed, loss: `Charbonnier (eps ${loss.eps}) + ${loss.fftWeight} x FFT L1`, optimizer: 'AdamW, warmup + cosine', ...(o.device ? { device: o.device } : {}) },
    }));
    return { ...res, split };
  } finally {
    model.dispose();
  }
}

// --- internal ---

async function isDir(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isDirectory(), () => false);
}

/** The gray 0..1 planes of one file: one for an image, one per slice of a volume. */
async function planes(path: string): Promise<RestoreImage[]> {
  // training data is the user's own (like seg_data's trusted folders): decoded in this process
  const v: Volume | undefined = (await loadInput(path, { sandbox: false })).volumes[0];
  if (!v) throw new GatedError('unsupported_format', `${path} holds no image`);
  const [nx = 1, ny = 1, nz = 1] = v.shape;
  const plane = nx * ny;
  const slope = v.meta.rescale?.slope ?? 1;
  const inter = v.meta.rescale?.intercept ?? 0;
  const rgb = v.meta.components === 'rgb';
  const real = (i: number) => (v.data[i] as number) * slope + inter;
  // 8-bit data is scaled by 255 in any format, so photographs stored as NIfTI train exactly like their PNGs
  let lo = 0;
  let hi = v.dtype === 'uint8' ? 255 : 65535;
  const byType = v.dtype === 'uint8' || (v.meta.format === 'image' && v.dtype === 'uint16');
  // a gray plane stored as plain integers of its type: its noisy versions are stored (rounded, clipped) the same way
  const levels = byType && !rgb && slope === 1 && inter === 0 ? hi : undefined;
  if (!byType) {
    lo = Infinity;
    hi = -Infinity;
    for (let i = 0; i < v.data.length; i++) (lo = Math.min(lo, real(i))), (hi = Math.max(hi, real(i)));
  }
  const span = hi > lo ? hi - lo : 1;
  const out: RestoreImage[] = [];
  for (let z = 0; z < nz; z++) {
    const p = new Float32Array(plane);
    for (let i = 0; i < plane; i++) {
      const k = z * plane + i;
      const g = rgb ? 0.299 * real(k) + 0.587 * real(nz * plane + k) + 0.114 * real(2 * nz * plane + k) : real(k);
      p[i] = (g - lo) / span;
    }
    out.push({ name: '', h: ny, w: nx, clean: p, ...(levels ? { levels } : {}) });
  }
  return out;
}

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
