/**
 * Model input preparation, driven by the model's manifest (never hard-coded): reorientation to the closest
 * RAS grid, then intensity normalisation by modality — a CT window clipped and scaled to [0, 1], or an MR
 * percentile z-score (robust to intensity scaling and bias, which is what MR users feed us).
 */
import { GatedError } from '../core/errors.ts';
import { toCanonical } from '../io/orient.ts';
import { realValues, type Volume } from '../io/volume.ts';

export type Normalization =
  | { kind: 'window'; lo: number; hi: number }
  | { kind: 'percentile_zscore'; lowPercentile: number; highPercentile: number; nonzeroOnly?: boolean }
  | { kind: 'none' };

export interface Preprocessed {
  /** Real values after normalisation, float32, on the canonical grid. */
  data: Float32Array;
  volume: Volume;
}

export function preprocess(volume: Volume, norm: Normalization, opts: { canonical?: boolean } = {}): Preprocessed {
  if (volume.meta.components === 'rgb') throw new GatedError('config', 'intensity normalisation expects a scalar volume');
  const v = opts.canonical === false ? volume : toCanonical(volume);
  const real = realValues(v);
  return { data: normalize(real, norm), volume: v };
}

export function normalize(values: ArrayLike<number>, norm: Normalization): Float32Array {
  const out = new Float32Array(values.length);
  switch (norm.kind) {
    case 'none':
      for (let i = 0; i < values.length; i++) out[i] = values[i]!;
      return out;
    case 'window': {
      if (!(norm.hi > norm.lo)) throw new GatedError('config', `window [${norm.lo}, ${norm.hi}] is empty`);
      const w = norm.hi - norm.lo;
      for (let i = 0; i < values.length; i++) out[i] = (Math.min(norm.hi, Math.max(norm.lo, values[i]!)) - norm.lo) / w;
      return out;
    }
    case 'percentile_zscore': {
      const pool: number[] = [];
      for (let i = 0; i < values.length; i++) if (!norm.nonzeroOnly || values[i] !== 0) pool.push(values[i]!);
      if (pool.length === 0) return out;
      pool.sort((a, b) => a - b);
      const lo = quantile(pool, norm.lowPercentile / 100);
      const hi = quantile(pool, norm.highPercentile / 100);
      // mean and std of the clipped foreground, as nnU-Net does for MR
      let sum = 0;
      let sq = 0;
      for (const x of pool) {
        const c = Math.min(hi, Math.max(lo, x));
        sum += c;
        sq += c * c;
      }
      const mean = sum / pool.length;
      const std = Math.sqrt(Math.max(sq / pool.length - mean * mean, 0)) || 1;
      for (let i = 0; i < values.length; i++) {
        const x = values[i]!;
        out[i] = norm.nonzeroOnly && x === 0 ? 0 : (Math.min(hi, Math.max(lo, x)) - mean) / std;
      }
      return out;
    }
  }
}

/** numpy.quantile's default linear interpolation on sorted data. */
function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const i = Math.floor(pos);
  const j = Math.min(sorted.length - 1, i + 1);
  return sorted[i]! + (sorted[j]! - sorted[i]!) * (pos - i);
}
