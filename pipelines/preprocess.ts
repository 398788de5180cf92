/**
 * Model input preparation, driven by the model's manifest (never hard-coded): reorientation to the closest
 * RAS grid, then intensity normalisation by modality — a CT window clipped and scaled to [0, 1], or an MR
 * percentile z-score (robust to intensity scaling and bias, which is what MR users feed us).
 *
 * Normalisation is a clip plus an affine map, so inference keeps the volume in its stored type and applies the
 * map while it builds each batch of slices (`prepare` + `Normalizer`): no float copy of a large volume ever
 * exists. Statistics of integer volumes come from a histogram (exact, and no sorted copy either).
 */
import { GatedError } from '../core/errors.ts';
import { axisMapTo, toCanonical } from '../io/orient.ts';
import type { DType, Volume } from '../io/volume.ts';
import { forEachSlab, type SliceSource } from './slice_source.ts';

export type Normalization =
  | { kind: 'window'; lo: number; hi: number }
  | { kind: 'percentile_zscore'; lowPercentile: number; highPercentile: number; nonzeroOnly?: boolean }
  | { kind: 'none' };

/** normalised = clamp(stored·slope + inter, lo, hi)·scale + offset (and 0 stays 0 when keepZero). */
export interface Normalizer {
  slope: number;
  inter: number;
  lo: number;
  hi: number;
  scale: number;
  offset: number;
  keepZero: boolean;
  /** The lowest stored value, when the statistics pass saw it (saves another pass over the volume). */
  storedMin?: number;
}

export interface Prepared {
  /** The volume on the canonical grid, still in its stored type (the input itself when already canonical). */
  volume: Volume;
  norm: Normalizer;
}

export interface Preprocessed {
  /** Real values after normalisation, float32, on the canonical grid. */
  data: Float32Array;
  volume: Volume;
}

export function prepare(volume: Volume, norm: Normalization, opts: { canonical?: boolean } = {}): Prepared {
  if (volume.meta.components === 'rgb') throw new GatedError('config', 'intensity normalisation expects a scalar volume');
  let v = volume;
  if (opts.canonical !== false) {
    const map = axisMapTo(volume.affine);
    const identity = map.perm.every((p, i) => p === i) && map.flip.every((f) => !f);
    if (!identity) v = toCanonical(volume);
  }
  return { volume: v, norm: normalizerFor(v.data, v.meta.rescale?.slope ?? 1, v.meta.rescale?.intercept ?? 0, norm, isIntegerArray(v.data)) };
}

/** The normalised volume as float32 (training, small volumes). */
export function preprocess(volume: Volume, norm: Normalization, opts: { canonical?: boolean } = {}): Preprocessed {
  const p = prepare(volume, norm, opts);
  const out = new Float32Array(p.volume.data.length);
  for (let i = 0; i < out.length; i++) out[i] = normalized(p.volume.data[i] as number, p.norm);
  return { data: out, volume: p.volume };
}

export function normalize(values: ArrayLike<number>, norm: Normalization): Float32Array {
  const n = normalizerFor(values, 1, 0, norm, false);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = normalized(values[i]!, n);
  return out;
}

export function normalized(stored: number, n: Normalizer): number {
  const x = stored * n.slope + n.inter;
  if (n.keepZero && x === 0) return 0;
  return (x < n.lo ? n.lo : x > n.hi ? n.hi : x) * n.scale + n.offset;
}

/**
 * A normaliser with the structure `normalizerFor` will give for this normalisation and rescale (which clips
 * and which zero rule apply) but placeholder values: enough to prepare the device programs before the
 * statistics exist.
 */
export function normalizerLike(norm: Normalization, rescale?: { slope: number; intercept: number }): Normalizer {
  const slope = rescale?.slope ?? 1;
  const inter = rescale?.intercept ?? 0;
  if (norm.kind === 'none') return { slope, inter, lo: -Infinity, hi: Infinity, scale: 1, offset: 0, keepZero: false };
  return { slope, inter, lo: 0, hi: 1, scale: 1, offset: 0, keepZero: norm.kind === 'percentile_zscore' && (norm.nonzeroOnly ?? false) };
}

export function normalizerFor(values: ArrayLike<number>, slope: number, inter: number, norm: Normalization, integer: boolean): Normalizer {
  return normalizerWith(slope, inter, norm, (pct, keepZero) => (integer && slope > 0 && values.length > 0 ? histogramStats(histogramOf(values), slope, inter, pct, keepZero) : sortedStats(values, slope, inter, pct, keepZero)));
}

/**
 * Whether `sourceNormalizer` can take this normalisation's statistics in one pass over slices read in turn: no
 * statistics, or a percentile z-score of 8/16-bit integers (a histogram; other types need every value at once).
 */
export function streamsStatistics(dtype: DType, slope: number, norm: Normalization): boolean {
  return norm.kind !== 'percentile_zscore' || (dtype in HISTOGRAM_BINS && slope > 0);
}

/**
 * `normalizerFor` of a volume read slab by slab from `source` (stored values): the same histogram, so the same
 * Normalizer, without the volume in memory. Only where `streamsStatistics` says so.
 */
export function sourceNormalizer(source: SliceSource, slope: number, inter: number, norm: Normalization): Normalizer {
  if (!streamsStatistics(source.dtype, slope, norm)) throw new GatedError('internal', `${norm.kind} statistics of ${source.dtype} voxels need the whole volume`);
  return normalizerWith(slope, inter, norm, (pct, keepZero) => {
    const h = new StoredHistogram(source.dtype as HistogramType);
    forEachSlab(source, (v) => h.add(v));
    return histogramStats(h.result(), slope, inter, pct, keepZero);
  });
}

// --- internal ---

interface Stats {
  lo: number;
  hi: number;
  mean: number;
  std: number;
  storedMin?: number;
}

type Percentiles = { lowPercentile: number; highPercentile: number };

/** The Normalizer of a normalisation, with the percentile statistics from `stats` (null: no voxel counted). */
function normalizerWith(slope: number, inter: number, norm: Normalization, stats: (pct: Percentiles, keepZero: boolean) => Stats | null): Normalizer {
  switch (norm.kind) {
    case 'none':
      return { slope, inter, lo: -Infinity, hi: Infinity, scale: 1, offset: 0, keepZero: false };
    case 'window': {
      if (!(norm.hi > norm.lo)) throw new GatedError('config', `window [${norm.lo}, ${norm.hi}] is empty`);
      const w = norm.hi - norm.lo;
      return { slope, inter, lo: norm.lo, hi: norm.hi, scale: 1 / w, offset: -norm.lo / w, keepZero: false };
    }
    case 'percentile_zscore': {
      const keepZero = norm.nonzeroOnly ?? false;
      const s = stats(norm, keepZero);
      if (!s) return { slope, inter, lo: 0, hi: 0, scale: 0, offset: 0, keepZero };
      const min = s.storedMin !== undefined ? { storedMin: s.storedMin } : {};
      return { slope, inter, lo: s.lo, hi: s.hi, scale: 1 / s.std, offset: -s.mean / s.std, keepZero, ...min };
    }
  }
}

function isIntegerArray(a: ArrayLike<number>): boolean {
  return a instanceof Uint8Array || a instanceof Int8Array || a instanceof Uint16Array || a instanceof Int16Array;
}

/** Exact numpy-style quantiles and clipped moments from a histogram of stored integers (slope > 0). */
function histogramStats(hist: { counts: Float64Array; min: number } | null, slope: number, inter: number, norm: Percentiles, keepZero: boolean): Stats | null {
  if (!hist) return null;
  const { counts, min } = hist;
  const real = (k: number) => (k + min) * slope + inter;
  if (keepZero) for (let k = 0; k < counts.length; k++) if (real(k) === 0) counts[k] = 0;
  let n = 0;
  for (let k = 0; k < counts.length; k++) n += counts[k]!;
  if (n === 0) return null;
  // value of the r-th order statistic (0-based)
  const order = (r: number) => {
    let acc = 0;
    for (let k = 0; k < counts.length; k++) {
      acc += counts[k]!;
      if (acc > r) return real(k);
    }
    return real(counts.length - 1);
  };
  const q = (p: number) => {
    const pos = (n - 1) * p;
    const i = Math.floor(pos);
    const a = order(i);
    return a + (order(Math.min(n - 1, i + 1)) - a) * (pos - i);
  };
  const lo = q(norm.lowPercentile / 100);
  const hi = q(norm.highPercentile / 100);
  let sum = 0;
  let sq = 0;
  for (let k = 0; k < counts.length; k++) {
    if (counts[k] === 0) continue;
    const c = Math.min(hi, Math.max(lo, real(k)));
    sum += counts[k]! * c;
    sq += counts[k]! * c * c;
  }
  const mean = sum / n;
  return { lo, hi, mean, std: Math.sqrt(Math.max(sq / n - mean * mean, 0)) || 1, storedMin: min };
}

type HistogramType = 'uint8' | 'int8' | 'uint16' | 'int16';
const HISTOGRAM_BINS: Record<string, number> = { uint8: 256, int8: 256, uint16: 65536, int16: 65536 };
const HISTOGRAM_MIN: Record<string, number> = { uint8: 0, int8: -128, uint16: 0, int16: -32768 };

/**
 * Counts of each stored 8- or 16-bit value, added a whole array or a slab at a time: the values index a table of
 * their type's whole range, trimmed at the end to the values present.
 */
class StoredHistogram {
  readonly #bins: number;
  readonly #typeMin: number;
  // four interleaved tables: neighbouring voxels (long runs of background) would otherwise wait on each other's
  // increment of one counter
  readonly #t: Uint32Array;

  constructor(dtype: HistogramType) {
    this.#bins = HISTOGRAM_BINS[dtype]!;
    this.#typeMin = HISTOGRAM_MIN[dtype]!;
    this.#t = new Uint32Array(4 * this.#bins);
  }

  add(values: ArrayLike<number>): void {
    const t = this.#t;
    const bins = this.#bins;
    const off = -this.#typeMin;
    const n4 = values.length & ~3;
    let i = 0;
    for (; i < n4; i += 4) {
      t[values[i]! + off]!++;
      t[values[i + 1]! + off + bins]!++;
      t[values[i + 2]! + off + 2 * bins]!++;
      t[values[i + 3]! + off + 3 * bins]!++;
    }
    for (; i < values.length; i++) t[values[i]! + off]!++;
  }

  /** The counts from the lowest value seen to the highest; null when nothing was added. */
  result(): { counts: Float64Array; min: number } | null {
    const t = this.#t;
    const bins = this.#bins;
    const full = new Float64Array(bins);
    for (let k = 0; k < bins; k++) full[k] = t[k]! + t[k + bins]! + t[k + 2 * bins]! + t[k + 3 * bins]!;
    let a = 0;
    while (a < bins && full[a] === 0) a++;
    if (a === bins) return null;
    let b = bins - 1;
    while (full[b] === 0) b--;
    return { counts: full.subarray(a, b + 1), min: a + this.#typeMin };
  }
}

/** Counts of each stored value from the lowest to the highest, in one pass for 8- and 16-bit arrays. */
function histogramOf(values: ArrayLike<number>): { counts: Float64Array; min: number } | null {
  const type = VOXEL_TYPES.find(([T]) => values instanceof T)?.[1];
  if (!type) return rangeHistogram(values);
  const h = new StoredHistogram(type);
  h.add(values);
  return h.result();
}

const VOXEL_TYPES: [new (n: number) => ArrayLike<number>, HistogramType][] = [[Uint8Array, 'uint8'], [Int8Array, 'int8'], [Uint16Array, 'uint16'], [Int16Array, 'int16']];

/** The same for integers of any other container: a pass for the range, then one to count. */
function rangeHistogram(values: ArrayLike<number>): { counts: Float64Array; min: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const counts = new Float64Array(max - min + 1);
  for (let i = 0; i < values.length; i++) counts[values[i]! - min]!++;
  return { counts, min };
}

function sortedStats(values: ArrayLike<number>, slope: number, inter: number, norm: Percentiles, keepZero: boolean): Stats | null {
  let count = 0;
  for (let i = 0; i < values.length; i++) if (!keepZero || values[i]! * slope + inter !== 0) count++;
  if (count === 0) return null;
  // a typed-array sort: numeric, in place, and no boxed JS array (float32 data keeps 4 bytes per voxel)
  const pool = values instanceof Float32Array && slope === 1 && inter === 0 ? new Float32Array(count) : new Float64Array(count);
  let k = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]! * slope + inter;
    if (!keepZero || x !== 0) pool[k++] = x;
  }
  pool.sort();
  const quantile = (p: number) => {
    const pos = (pool.length - 1) * p;
    const i = Math.floor(pos);
    const j = Math.min(pool.length - 1, i + 1);
    return pool[i]! + (pool[j]! - pool[i]!) * (pos - i);
  };
  const lo = quantile(norm.lowPercentile / 100);
  const hi = quantile(norm.highPercentile / 100);
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < pool.length; i++) {
    const c = Math.min(hi, Math.max(lo, pool[i]!));
    sum += c;
    sq += c * c;
  }
  const mean = sum / pool.length;
  return { lo, hi, mean, std: Math.sqrt(Math.max(sq / pool.length - mean * mean, 0)) || 1 };
}
