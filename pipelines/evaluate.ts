/**
 * `evaluate`: predictions against references, paired by file name. Label maps (NIfTI or PNG masks) get Dice,
 * IoU, HD95 and surface Dice per label and case; images get PSNR and SSIM (SSIM of a volume or colour image is
 * the mean over its 2D planes, as skimage's channel_axis does for colour). A prediction on another grid than
 * its reference is refused (a metric over misaligned voxels would be a number without meaning).
 */
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { GatedError, toGatedError } from '../core/errors.ts';
import { loadInput, type LoadOptions } from '../io/load.ts';
import type { Volume } from '../io/volume.ts';
import { psnr, ssim } from './metrics/restoration.ts';
import { segmentationMetrics, type LabelMetrics } from './metrics/segmentation.ts';

export type EvalTask = 'segment' | 'restore';

export interface EvaluateOptions {
  /**
   * Default: decided per case from the reference: an integer map with few distinct values is a label map
   * (at most `maxLabels`; default 1000 for volumes, which atlases need, and 32 for 2D images, which photos exceed).
   */
  task?: EvalTask;
  /** Surface Dice tolerance in mm. */
  tolerance?: number;
  /** Labels to score, where present in either map (default: every nonzero value in either map). */
  labels?: number[];
  maxLabels?: number;
  load?: LoadOptions;
  onCase?: (done: number, total: number, name: string) => void;
}

export interface SegmentCase {
  name: string;
  task: 'segment';
  pred: string;
  ref: string;
  labels: LabelMetrics[];
}

export interface RestoreCase {
  name: string;
  task: 'restore';
  pred: string;
  ref: string;
  psnr: number;
  ssim: number;
  dataRange: number;
}

export type CaseResult = SegmentCase | RestoreCase;

export interface LabelSummary {
  label: number;
  cases: number;
  dice: number;
  iou: number;
  /** Mean over cases where both maps hold the label (an infinite HD95 would swamp the mean). */
  hd95: number;
  surfaceDice: number;
}

export interface EvaluateSummary {
  cases: CaseResult[];
  /** Reference files without a prediction, and predictions without a reference. */
  missingPred: string[];
  missingRef: string[];
  labels: LabelSummary[];
  restore?: { cases: number; psnr: number; ssim: number };
}

/** Affine entries may differ by this much (mm) before two grids count as different (float32 round-trips). */
const AFFINE_TOL = 1e-3;

export async function evaluateDirs(predDir: string, refDir: string, opts: EvaluateOptions = {}): Promise<EvaluateSummary> {
  const preds = await listByKey(predDir);
  const refs = await listByKey(refDir);
  const keys = [...refs.keys()].filter((k) => preds.has(k)).sort();
  const missingPred = [...refs.keys()].filter((k) => !preds.has(k)).map((k) => refs.get(k)!).sort();
  const missingRef = [...preds.keys()].filter((k) => !refs.has(k)).map((k) => preds.get(k)!).sort();
  if (keys.length === 0) throw new GatedError('not_found', `no file in ${predDir} has a reference of the same name in ${refDir}`);
  const cases: CaseResult[] = [];
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const [p, r] = [preds.get(k)!, refs.get(k)!];
    const [pv, rv] = [await loadOne(join(predDir, p), opts.load), await loadOne(join(refDir, r), opts.load)];
    cases.push(evaluatePair(k, pv, rv, { ...opts, predName: p, refName: r }));
    opts.onCase?.(i + 1, keys.length, k);
  }
  return { cases, missingPred, missingRef, ...summarize(cases) };
}

/** Metrics of one prediction against its reference (same grid required). */
export function evaluatePair(name: string, pred: Volume, ref: Volume, opts: EvaluateOptions & { predName?: string; refName?: string } = {}): CaseResult {
  checkGeometry(name, pred, ref);
  const task = opts.task ?? guessTask(ref, opts.maxLabels ?? (ref.meta.format === 'image' ? 32 : 1000));
  const base = { name, pred: opts.predName ?? name, ref: opts.refName ?? name };
  if (task === 'segment') {
    if (pred.meta.components === 'rgb' || ref.meta.components === 'rgb') throw new GatedError('config', `${name}: a label map must be single-channel`);
    const pv = realValues(pred);
    const rvals = realValues(ref);
    // a label in neither map says nothing about this case (scoring it 1.0 would inflate the means)
    const present = nonzeroLabels(pv, rvals);
    const labels = opts.labels ? opts.labels.filter((l) => present.includes(l)) : present;
    const shape = ref.shape.slice(0, 3);
    while (shape.length < 3) shape.push(1);
    const spacing = ref.spacing.slice(0, 3).map((s) => (s > 0 ? s : 1));
    while (spacing.length < 3) spacing.push(1);
    return { ...base, task, labels: segmentationMetrics(pv, rvals, shape, spacing, labels, opts.tolerance ?? 1) };
  }
  const range = dataRange(ref);
  const pv = realValues(pred);
  const rvals = realValues(ref);
  const [nx = 1, ny = 1] = ref.shape;
  const planes = pv.length / (nx * ny);
  let s = 0;
  for (let k = 0; k < planes; k++) s += ssim(rvals.subarray(k * nx * ny, (k + 1) * nx * ny), pv.subarray(k * nx * ny, (k + 1) * nx * ny), nx, ny, range);
  return { ...base, task, psnr: psnr(rvals, pv, range), ssim: s / planes, dataRange: range };
}

/** Segment when the reference is an integer map with few distinct values; restore otherwise. */
export function guessTask(ref: Volume, maxLabels: number): EvalTask {
  if (ref.dtype === 'float32' || ref.dtype === 'float64' || ref.meta.components === 'rgb') return 'restore';
  const seen = new Set<number>();
  for (let i = 0; i < ref.data.length; i++) {
    seen.add(ref.data[i] as number);
    if (seen.size > maxLabels) return 'restore';
  }
  return 'segment';
}

/** skimage's convention: the dtype's range for integer images, the reference's span for float images. */
export function dataRange(ref: Volume): number {
  const ranges: Partial<Record<string, number>> = { uint8: 255, int8: 255, uint16: 65535, int16: 65535, uint32: 2 ** 32 - 1, int32: 2 ** 32 - 1 };
  const slope = ref.meta.rescale?.slope ?? 1;
  const r = ranges[ref.dtype];
  if (r !== undefined) return r * Math.abs(slope);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ref.data.length; i++) {
    const v = ref.data[i] as number;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return hi > lo ? (hi - lo) * Math.abs(slope) : 1;
}

export function checkGeometry(name: string, pred: Volume, ref: Volume): void {
  const shape = (v: Volume) => {
    const s = [...v.shape];
    while (s.length > 2 && s[s.length - 1] === 1) s.pop();
    return s.join('x');
  };
  if (shape(pred) !== shape(ref)) throw new GatedError('geometry_mismatch', `${name}: prediction is ${shape(pred)}, reference ${shape(ref)}`);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 4; c++) {
      const d = Math.abs(pred.affine[r]![c]! - ref.affine[r]![c]!);
      if (!(d <= AFFINE_TOL)) throw new GatedError('geometry_mismatch', `${name}: prediction and reference affines differ (row ${r}, column ${c}: ${pred.affine[r]![c]} vs ${ref.affine[r]![c]})`, { details: { row: r, column: c } });
    }
}

// --- internal ---

const EXT = /\.(nii\.gz|nii|png|tif|tiff|jpe?g|webp)$/i;

/** Files under `dir` (recursively) keyed by their relative path without the image extension. */
async function listByKey(dir: string): Promise<Map<string, string>> {
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (e) {
    throw toGatedError(e, 'not_found', `cannot read folder '${dir}'`);
  }
  const out = new Map<string, string>();
  for (const e of entries) {
    if (!e.isFile() || !EXT.test(e.name)) continue;
    const rel = relative(dir, join(e.parentPath, e.name));
    const key = rel.replace(EXT, '');
    if (out.has(key)) throw new GatedError('config', `'${out.get(key)}' and '${rel}' in ${dir} pair with the same name; keep one`);
    out.set(key, rel);
  }
  return out;
}

async function loadOne(path: string, load: LoadOptions | undefined): Promise<Volume> {
  const res = await loadInput(path, load ?? {});
  const v = res.volumes[0];
  if (!v) throw new GatedError('unsupported_format', `${path} holds no image`);
  if (res.volumes.length > 1) throw new GatedError('config', `${path} holds ${res.volumes.length} volumes; evaluate pairs one volume per file`);
  return v;
}

function realValues(v: Volume): Float64Array {
  const slope = v.meta.rescale?.slope ?? 1;
  const inter = v.meta.rescale?.intercept ?? 0;
  const out = new Float64Array(v.data.length);
  for (let i = 0; i < out.length; i++) out[i] = (v.data[i] as number) * slope + inter;
  return out;
}

function nonzeroLabels(a: Float64Array, b: Float64Array): number[] {
  const s = new Set<number>();
  for (const arr of [a, b]) for (let i = 0; i < arr.length; i++) if (arr[i] !== 0) s.add(arr[i]!);
  return [...s].sort((x, y) => x - y);
}

function summarize(cases: CaseResult[]): Pick<EvaluateSummary, 'labels' | 'restore'> {
  const byLabel = new Map<number, LabelMetrics[]>();
  for (const c of cases) if (c.task === 'segment') for (const l of c.labels) byLabel.set(l.label, [...(byLabel.get(l.label) ?? []), l]);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const labels = [...byLabel.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([label, ms]) => ({
      label,
      cases: ms.length,
      dice: mean(ms.map((m) => m.dice)),
      iou: mean(ms.map((m) => m.iou)),
      hd95: mean(ms.filter((m) => Number.isFinite(m.hd95)).map((m) => m.hd95)),
      surfaceDice: mean(ms.map((m) => m.surfaceDice)),
    }));
  const rs = cases.filter((c): c is RestoreCase => c.task === 'restore');
  return { labels, ...(rs.length ? { restore: { cases: rs.length, psnr: mean(rs.map((c) => c.psnr)), ssim: mean(rs.map((c) => c.ssim)) } } : {}) };
}
