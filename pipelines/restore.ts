/**
 * Restoration (denoising, deblurring) of images and volumes, slice by slice, in overlapping tiles when asked.
 * The output keeps the input's grid, format family and stored type: an 8-bit PNG gives an 8-bit PNG, a 16-bit
 * PNG a 16-bit PNG, a NIfTI volume a NIfTI volume of the same dtype and affine (DICOM gives NIfTI).
 *
 * Intensities go to [0, 1] for the model: 8-bit data and 16-bit images by their type's full range (so a 16-bit
 * copy of an 8-bit image is restored exactly like the original), other volumes by their own min..max, or by the window the model's
 * manifest names; the map is inverted afterwards and integer outputs are rounded and clipped to the type.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from '../core/atomic.ts';
import { GatedError, toGatedError } from '../core/errors.ts';
import { VERSION } from '../core/version.ts';
import { writePng } from '../io/image/write.ts';
import { loadInput, type LoadOptions } from '../io/load.ts';
import { niftiParts } from '../io/nifti/write.ts';
import type { Volume, VoxelArray } from '../io/volume.ts';
import { evaluatePair } from './evaluate.ts';
import { RunManifest, shard, type RunRecord, type RunSettings } from './manifest.ts';
import { collectCases, forwardsSince } from './segment.ts';
import type { TaskModel } from './task_model.ts';
import { runTiled, type ImageModel, type TileOptions } from './tiling.ts';

export interface RestoreOptions {
  /** Tile side in pixels (0: whole slices). */
  tile?: number;
  /** Pixels shared by neighbouring tiles (default: tile / 8). */
  overlap?: number;
  /** TLC local pooling window for MAXIM's channel attention (the training crop size). */
  localPooling?: [number, number];
  /**
   * Geometric self-ensemble: each slice (or tile) is restored in its 8 flips and 90° rotations and the results,
   * mapped back, are averaged. About 8x the model time.
   */
  tta?: boolean;
  /** Folder of clean references, paired by file name: PSNR/SSIM of input and output are reported. */
  refDir?: string;
  load?: LoadOptions;
  onSlices?: (done: number, total: number) => void;
}

export interface RestoreMetrics {
  /** Output against the reference. */
  psnr: number;
  ssim: number;
  /** Input against the reference, for the gain. */
  inputPsnr: number;
  inputSsim: number;
}

export interface RestoreFileResult {
  /** Names relative to outDir. */
  outputs: string[];
  warnings: string[];
  metrics?: RestoreMetrics;
}

/** Restores every volume of one input into outDir (the contract pipelines/run_task.ts calls). */
export async function restoreFile(input: string, outDir: string, model: TaskModel, opts: RestoreOptions = {}): Promise<RestoreFileResult> {
  return restoreCase(input, stemOf(basename(input)), outDir, model, opts);
}

/** The restored volume: same shape, affine, dtype and rescale as the input. */
export async function restoreVolume(volume: Volume, model: TaskModel, opts: RestoreOptions = {}): Promise<Volume> {
  const m = model.manifest;
  if (m.task !== 'restore') throw new GatedError('config', `model '${m.name}' is a ${m.task} model, not a restoration model`);
  if (m.input.context !== 0) throw new GatedError('config', `model '${m.name}' takes 2.5D context; restoration runs on single slices`);
  const cin = m.input.channels;
  const [nx = 1, ny = 1, nz = 1] = volume.shape;
  const rgb = volume.meta.components === 'rgb';
  const comps = rgb ? (volume.shape[3] ?? 1) : 1;
  if (!rgb && volume.shape.length > 3 && (volume.shape[3] ?? 1) > 1) throw new GatedError('shape', `restoration takes 2D images and 3D volumes; this one has shape [${volume.shape.join(', ')}]`);
  if (cin !== 1 && cin !== comps) throw new GatedError('config', `model '${m.name}' takes ${cin} channels; the input has ${comps}`);
  const [lo, hi] = intensityRange(volume, m.input.normalization);
  const span = hi > lo ? hi - lo : 1;
  const slope = volume.meta.rescale?.slope ?? 1;
  const inter = volume.meta.rescale?.intercept ?? 0;
  const out = new (volume.data.constructor as new (n: number) => VoxelArray)(volume.data.length);
  const [tmin, tmax] = typeRange(volume.dtype);
  const integer = Number.isFinite(tmin);
  const plane = nx * ny;
  const passes = cin === 1 ? comps : 1;
  const tileOpts: TileOptions = { ...(opts.tile ? { tile: opts.tile, overlap: overlapOf(opts) } : {}), multipleOf: m.input.multipleOf };
  const pooled = localPooled(model, opts.localPooling);
  // inside the tile function, so each tile (already padded to the size multiple) is transformed whole: a
  // rotated tile swaps its sides, which are both multiples, and the tile grid and cross-fade stay as they are
  const fn = opts.tta ? selfEnsemble(pooled) : pooled;
  let done = 0;
  for (let z = 0; z < nz; z++) {
    for (let p = 0; p < passes; p++) {
      const ch = cin === 1 ? [p] : Array.from({ length: comps }, (_, c) => c);
      const buf = new Float32Array(plane * cin);
      for (let c = 0; c < ch.length; c++) {
        const base = (ch[c]! * nz + z) * plane;
        for (let i = 0; i < plane; i++) buf[i * cin + c] = ((volume.data[base + i] as number) * slope + inter - lo) / span;
      }
      const { out: res, cout } = await runTiled(buf, ny, nx, cin, fn, tileOpts);
      if (cout !== cin) throw new GatedError('shape', `model '${m.name}' returned ${cout} channels for ${cin}`);
      for (let c = 0; c < ch.length; c++) {
        const base = (ch[c]! * nz + z) * plane;
        for (let i = 0; i < plane; i++) {
          const stored = (res[i * cin + c]! * span + lo - inter) / slope;
          out[base + i] = integer ? Math.min(tmax, Math.max(tmin, Math.round(stored))) : stored;
        }
      }
      opts.onSlices?.(++done, nz * passes);
    }
  }
  return { ...volume, data: out, meta: { ...volume.meta, warnings: [] } };
}

export interface RestoreBatchOptions extends RestoreOptions {
  outDir: string;
  resume?: boolean;
  part?: string;
  modelName: string;
  device: string;
  onCase?: (done: number, total: number, name: string, record: RunRecord) => void;
}

export interface RestoreBatchSummary {
  total: number;
  done: number;
  skipped: number;
  rejected: number;
  failed: number;
  manifest: string;
  records: Array<RunRecord & { metrics?: RestoreMetrics }>;
  /** Means over the cases that had a reference. */
  metrics?: RestoreMetrics & { cases: number };
}

/** A batch with the model loaded once: every input's outcome goes to the run manifest; one bad input does not stop the rest. */
export async function restoreBatch(inputs: string[], model: TaskModel, opts: RestoreBatchOptions): Promise<RestoreBatchSummary> {
  if (opts.localPooling) localPooled(model, opts.localPooling); // a model it cannot apply to is refused before any input
  let cases = await collectCases(inputs);
  if (opts.part) cases = shard(cases, opts.part, (c) => c.path);
  const manifest = await RunManifest.open(join(opts.outDir, 'manifest.jsonl'));
  const records: RestoreBatchSummary['records'] = [];
  const settings = restoreSettings(model, opts);
  let skipped = 0;
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    if (opts.resume && manifest.isDone(c.id, settings)) {
      skipped++;
      records.push(manifest.last(c.id)!);
      opts.onCase?.(i + 1, cases.length, c.name, manifest.last(c.id)!);
      continue;
    }
    const t0 = Date.now();
    const common = { id: c.id, input: c.path, model: { name: opts.modelName, sha256: model.sha256 }, settings, device: opts.device, versions: { gatedvision: VERSION, tfjs: tf.version_core }, at: new Date().toISOString() };
    let record: RunRecord & { metrics?: RestoreMetrics };
    const before = { ...model.replays.stats };
    try {
      const res = await restoreCase(c.path, c.name, opts.outDir, model, opts);
      record = { ...common, status: 'done', outputs: res.outputs.map((o) => join(opts.outDir, o)), ms: Date.now() - t0, ...forwardsSince(model, before), ...(res.metrics ? { metrics: res.metrics } : {}) };
    } catch (e) {
      const err = toGatedError(e, 'internal');
      const rejected = ERROR_IS_INPUT.has(err.code) || err.exitCode === 3 || err.exitCode === 4;
      record = { ...common, status: rejected ? 'rejected' : 'failed', code: err.code, message: err.message, outputs: [], ms: Date.now() - t0 };
    }
    await manifest.append(record);
    records.push(record);
    opts.onCase?.(i + 1, cases.length, c.name, record);
  }
  const count = (s: string) => records.filter((r) => r.status === s).length;
  const withRef = records.filter((r) => r.metrics);
  const mean = (f: (m: RestoreMetrics) => number) => withRef.reduce((a, r) => a + f(r.metrics!), 0) / withRef.length;
  return {
    total: cases.length,
    done: count('done') - skipped,
    skipped,
    rejected: count('rejected'),
    failed: count('failed'),
    manifest: manifest.path,
    records,
    ...(withRef.length ? { metrics: { cases: withRef.length, psnr: mean((m) => m.psnr), ssim: mean((m) => m.ssim), inputPsnr: mean((m) => m.inputPsnr), inputSsim: mean((m) => m.inputSsim) } } : {}),
  };
}

// --- internal ---

const ERROR_IS_INPUT = new Set<string>(['geometry_mismatch', 'shape']);

async function restoreCase(input: string, name: string, outDir: string, model: TaskModel, opts: RestoreOptions): Promise<RestoreFileResult> {
  const loaded = await loadInput(input, opts.load ?? {});
  if (loaded.volumes.length === 0) {
    const first = loaded.rejected[0];
    throw new GatedError((first?.code as never) ?? 'unsupported_format', first ? `no usable volume (first rejection: ${first.code}: ${first.message})` : 'no usable volume in this input');
  }
  const warnings = loaded.warnings.map((w) => `${w.code}: ${w.message}`);
  const outputs: string[] = [];
  const multi = loaded.volumes.length > 1;
  let metrics: RestoreMetrics | undefined;
  for (let s = 0; s < loaded.volumes.length; s++) {
    const src = loaded.volumes[s]!;
    const vname = multi ? `${name}_s${String(s + 1).padStart(2, '0')}` : name;
    const restored = await restoreVolume(src, model, opts);
    let file: string;
    if (src.meta.format === 'image') {
      file = `${vname}.png`;
      if (src.dtype !== 'uint8' && src.dtype !== 'uint16') throw new GatedError('unsupported_datatype', `cannot write a ${src.dtype} image as PNG`);
      await writeFileAtomic(join(outDir, file), await writePng(restored, { bitDepth: src.dtype === 'uint8' ? 8 : 16 }));
    } else {
      file = `${vname}.nii.gz`;
      await writeFileAtomic(join(outDir, file), niftiParts(restored, { gzip: true, description: `gatedvision restore ${model.manifest.name}` }));
    }
    outputs.push(file);
    if (opts.refDir && !multi) {
      const ref = await findReference(opts.refDir, name);
      if (!ref) warnings.push(`no reference named ${name}.* in ${opts.refDir}`);
      else {
        const refVol = (await loadInput(ref, opts.load ?? {})).volumes[0];
        if (!refVol) throw new GatedError('unsupported_format', `reference ${ref} holds no image`);
        const after = evaluatePair(name, restored, refVol, { task: 'restore' });
        const before = evaluatePair(name, src, refVol, { task: 'restore' });
        if (after.task === 'restore' && before.task === 'restore') metrics = { psnr: after.psnr, ssim: after.ssim, inputPsnr: before.psnr, inputSsim: before.ssim };
      }
    }
  }
  return { outputs, warnings, ...(metrics ? { metrics } : {}) };
}

/** The model as a tile function, with TLC local pooling switched on for MAXIM backbones while it runs. */
function localPooled(model: TaskModel, window: [number, number] | undefined): (x: tf.Tensor4D) => tf.Tensor4D {
  if (!window) return (x) => tf.tidy(() => model.predict(x));
  // task_model keeps the backbone as a field; local pooling is a run-time switch of the MAXIM backbone
  const bb = (model as unknown as { backbone?: { arch?: string; localPooling?: [number, number] | null } }).backbone;
  if (!bb || bb.arch !== 'maxim') throw new GatedError('config', `--local-pooling applies to MAXIM models; '${model.manifest.name}' uses ${model.manifest.backbone.arch}`);
  return (x) => {
    bb.localPooling = window;
    try {
      return tf.tidy(() => model.predict(x));
    } finally {
      bb.localPooling = null;
    }
  };
}

/**
 * The mean of `fn` over the 8 symmetries of the square (dihedral group D4), each output mapped back by the
 * inverse transform. One transform at a time: a batch of 8 would hold 8 activations of a whole slice at once.
 */
function selfEnsemble(fn: ImageModel): ImageModel {
  return (x) => {
    let sum: tf.Tensor4D | null = null;
    try {
      for (const t of DIHEDRAL) {
        const prev: tf.Tensor4D | null = sum;
        // scaled before summing, so the first term is a new tensor even when fn hands back its input
        sum = tf.tidy((): tf.Tensor4D => {
          const y = tf.mul<tf.Tensor4D>(t.inverse(fn(t.forward(x))), 1 / DIHEDRAL.length);
          return prev ? tf.add<tf.Tensor4D>(prev, y) : y;
        });
        prev?.dispose();
      }
    } catch (e) {
      sum?.dispose();
      throw e;
    }
    return sum!;
  };
}

type PlaneMap = (t: tf.Tensor4D) => tf.Tensor4D;

// [n, h, w, c], rows on axis 1: swapping axes 1 and 2 transposes every plane
const same: PlaneMap = (t) => t;
const transpose: PlaneMap = (t) => tf.transpose(t, [0, 2, 1, 3]);
const antiTranspose: PlaneMap = (t) => tf.reverse(transpose(t), [1, 2]);
const quarterCcw: PlaneMap = (t) => tf.reverse(transpose(t), 1);
const quarterCw: PlaneMap = (t) => tf.reverse(transpose(t), 2);
const halfTurn: PlaneMap = (t) => tf.reverse(t, [1, 2]);
const mirrorLeftRight: PlaneMap = (t) => tf.reverse(t, 2);
const mirrorUpDown: PlaneMap = (t) => tf.reverse(t, 1);

/** Six of the eight undo themselves; a quarter turn is undone by the opposite one. */
const DIHEDRAL: ReadonlyArray<{ forward: PlaneMap; inverse: PlaneMap }> = [
  { forward: quarterCcw, inverse: quarterCw },
  { forward: quarterCw, inverse: quarterCcw },
  ...[same, halfTurn, mirrorLeftRight, mirrorUpDown, transpose, antiTranspose].map((f) => ({ forward: f, inverse: f })),
];

/** What changes a restored file besides its input (references only add metrics). */
function restoreSettings(model: TaskModel, opts: RestoreOptions): RunSettings {
  return { weights: model.sha256, tile: opts.tile ?? 0, overlap: opts.tile ? overlapOf(opts) : 0, localPooling: opts.localPooling ? opts.localPooling.join('x') : null, tta: opts.tta ?? false };
}

/** The overlap tiles run with: as asked, else an eighth of the tile. */
function overlapOf(opts: RestoreOptions): number {
  return opts.overlap ?? Math.max(0, Math.floor((opts.tile ?? 0) / 8));
}

function intensityRange(v: Volume, norm: TaskModel['manifest']['input']['normalization']): [number, number] {
  if (norm.kind === 'window') return [norm.lo, norm.hi];
  const slope = v.meta.rescale?.slope ?? 1;
  const inter = v.meta.rescale?.intercept ?? 0;
  if (v.dtype === 'uint8' || (v.meta.format === 'image' && v.dtype === 'uint16')) return [inter, (v.dtype === 'uint8' ? 255 : 65535) * slope + inter];
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < v.data.length; i++) {
    const x = (v.data[i] as number) * slope + inter;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return Number.isFinite(lo) ? [lo, hi] : [0, 1];
}

function typeRange(dtype: Volume['dtype']): [number, number] {
  switch (dtype) {
    case 'uint8':
      return [0, 255];
    case 'int8':
      return [-128, 127];
    case 'uint16':
      return [0, 65535];
    case 'int16':
      return [-32768, 32767];
    case 'uint32':
      return [0, 2 ** 32 - 1];
    case 'int32':
      return [-(2 ** 31), 2 ** 31 - 1];
    default:
      return [-Infinity, Infinity];
  }
}

const IMAGE_EXT = /\.(nii\.gz|nii|png|tif|tiff|jpe?g|webp|dcm)$/i;

function stemOf(name: string): string {
  return name.replace(IMAGE_EXT, '');
}

async function findReference(dir: string, name: string): Promise<string | undefined> {
  let entries: string[];
  try {
    if (!(await stat(dir)).isDirectory()) throw new GatedError('not_found', `--ref ${dir} is not a folder`);
    entries = await readdir(dir);
  } catch (e) {
    throw toGatedError(e, 'not_found', `cannot read the reference folder '${dir}'`);
  }
  const hit = entries.filter((e) => IMAGE_EXT.test(e) && stemOf(e) === name).sort()[0];
  return hit ? join(dir, hit) : undefined;
}
