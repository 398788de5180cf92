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
import { DEBLUR_DEGRADE, DENOISE_DEGRADE, degrade, makeRestoreBatch, VALIDATION_DEGRADE, type DegradeConfig, type PatchSampling, type RestoreImage } from './restore_batch.ts';
import { Rng } from './rng.ts';
import { BatchThread, BatchThreadFailure } from './batch_thread.ts';

export { DEBLUR_DEGRADE, DENOISE_DEGRADE, degrade, makeRestoreBatch, PATCH_SAMPLING, type DegradeConfig, type PatchSampling, type RestoreImage } from './restore_batch.ts';

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

export interface RestoreTaskOptions {
  batch: number;
  patch: number;
  stepsPerEpoch: number;
  degrade: DegradeConfig;
  loss?: RestoreLossConfig;
  sample?: PatchSampling;
  /** Makes the batches off the main thread (the same batches); if the thread fails, they are made here again. */
  thread?: BatchThread;
  log?: (line: string) => void;
}

export function restoreTrainTask(train: RestoreImage[], val: RestoreImage[], o: RestoreTaskOptions): TrainTask {
  const lossOf = (m: TaskModel, x: Float32Array, y: Float32Array, seed: number) => () => {
    const xt = tf.tensor4d(x, [o.batch, o.patch, o.patch, 1]);
    const yt = tf.tensor4d(y, [o.batch, o.patch, o.patch, 1]);
    return withTraining(() => restoreLoss(m.predict(xt), yt, o.loss ?? RESTORE_LOSS_DEFAULTS), { seed });
  };
  const batchLoss = (m: TaskModel, rng: Rng) => {
    const { x, y } = makeRestoreBatch(train, o.batch, o.patch, o.degrade, rng, o.sample);
    return lossOf(m, x, y, rng.state); // the seed is read, not drawn: the data stream stays as it was; masks replay on resume
  };
  let thread = o.thread;
  return {
    stepsPerEpoch: o.stepsPerEpoch,
    batchLoss,
    ...(thread
      ? {
          batchLossAsync: async (m: TaskModel, rng: Rng) => {
            if (thread) {
              try {
                const b = await thread.make(rng.state);
                rng.state = b.state;
                return lossOf(m, b.x, b.y, b.state);
              } catch (e) {
                if (!(e instanceof BatchThreadFailure)) throw e;
                // the generator has not moved: the batch made here is the one the thread would have made
                o.log?.(`${e.message}; batches are made on the main thread from here on`);
                thread = undefined;
              }
            }
            return batchLoss(m, rng);
          },
        }
      : {}),
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
  let thread: BatchThread | undefined;
  try {
    thread = new BatchThread({ images: train, batch: o.batch, patch, degrade: degradeCfg, sample });
  } catch (e) {
    log(`batches are made on the main thread (no batch thread: ${e instanceof Error ? e.message : String(e)})`);
  }
  try {
    if (o.init) await initWeights(model, o.init, log);
    const res = await trainLoop(model, restoreTrainTask(train, val, { batch: o.batch, patch, stepsPerEpoch, degrade: degradeCfg, loss, sample, ...(thread ? { thread } : {}), log }), runLoopOptions(o, {
      task: 'restore',
      patch,
      data: { folder: o.data, images: images.map((i) => ({ name: i.name, shape: [i.w, i.h] })), validation: split, degradation: degradeCfg, paired: images.some((i) => i.noisy) },
      training: { preset: o.model, ...(o.init ? { init: o.init } : {}), epochs: o.epochs, batch: o.batch, patch, stepsPerEpoch, sample, seed: o.seed, loss: `Charbonnier (eps ${loss.eps}) + ${loss.fftWeight} x FFT L1`, optimizer: 'AdamW, warmup + cosine', ...(o.device ? { device: o.device } : {}) },
    }));
    return { ...res, split };
  } finally {
    model.dispose();
    await thread?.close();
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
