/**
 * Image-to-image inference in overlapping tiles. Each tile's outer `margin` pixels at an inner edge (where a
 * neighbour tile continues) are dropped — there the model saw zero padding instead of the real neighbours —
 * and the rest of the overlap is cross-faded linearly, so weights always sum to one. For a model whose
 * receptive-field radius is at most the margin, every kept pixel equals the whole-image result, so the tiled
 * output equals the untiled one up to float rounding; for larger receptive fields the cross-fade hides seams.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';

/** [n, h, w, cin] → [n, h, w, cout]. */
export type ImageModel = (x: tf.Tensor4D) => tf.Tensor4D;

export interface TileOptions {
  /** Tile side; 0 or undefined runs the whole image (padded to `multipleOf`). */
  tile?: number;
  /** Pixels shared by neighbouring tiles. */
  overlap?: number;
  /** Model inputs must have sides that are multiples of this (padding replicates the border). */
  multipleOf?: number;
  onTile?: (done: number, total: number) => void;
}

export interface TilePlan {
  ys: number[];
  xs: number[];
  th: number;
  tw: number;
  margin: number;
}

/** Tile starts along one axis: stride tile − overlap, the last tile flush with the end. */
export function tileStarts(size: number, tile: number, overlap: number): number[] {
  if (size <= tile) return [0];
  const stride = tile - overlap;
  const starts: number[] = [];
  for (let s = 0; s + tile < size; s += stride) starts.push(s);
  starts.push(size - tile);
  return [...new Set(starts)];
}

/** Pixels dropped at each inner tile edge: a quarter of the overlap (the cross-fade gets the other half). */
export function tileMargin(overlap: number): number {
  return Math.floor(overlap / 4);
}

export function planTiles(h: number, w: number, opts: TileOptions): TilePlan {
  const tile = opts.tile ?? 0;
  const overlap = opts.overlap ?? 0;
  const mult = opts.multipleOf ?? 1;
  if (!Number.isInteger(tile) || tile < 0) throw new GatedError('config', `tile must be a whole number ≥ 0; got ${tile}`);
  if (tile > 0 && tile % mult) throw new GatedError('config', `tile ${tile} must be a multiple of ${mult} for this model`);
  if (!Number.isInteger(overlap) || overlap < 0 || (tile > 0 && overlap >= tile)) throw new GatedError('config', `overlap must be a whole number in [0, tile); got ${overlap}`);
  if (tile === 0 || (h <= tile && w <= tile)) return { ys: [0], xs: [0], th: h, tw: w, margin: 0 };
  const th = Math.min(tile, h);
  const tw = Math.min(tile, w);
  return { ys: tileStarts(h, th, overlap), xs: tileStarts(w, tw, overlap), th, tw, margin: tileMargin(overlap) };
}

/**
 * Runs `model` over an image [h, w, cin] (row-major, channels last) in tiles; returns [h, w, cout]. Tiles
 * smaller than the model's size multiple are padded by replicating the border and cropped back.
 */
export async function runTiled(img: Float32Array, h: number, w: number, cin: number, model: ImageModel, opts: TileOptions = {}): Promise<{ out: Float32Array; cout: number }> {
  if (img.length !== h * w * cin) throw new GatedError('shape', `image buffer holds ${img.length} values, expected ${h}x${w}x${cin}`);
  const plan = planTiles(h, w, opts);
  const mult = opts.multipleOf ?? 1;
  const ramp = Math.max(0, (opts.overlap ?? 0) - 2 * plan.margin);
  const wy = plan.ys.map((y) => axisWeights(plan.th, y > 0, y + plan.th < h, plan.margin, ramp));
  const wx = plan.xs.map((x) => axisWeights(plan.tw, x > 0, x + plan.tw < w, plan.margin, ramp));
  let out: Float32Array | null = null;
  let norm: Float32Array | null = null;
  let cout = 0;
  const total = plan.ys.length * plan.xs.length;
  let done = 0;
  const single = total === 1;
  for (let a = 0; a < plan.ys.length; a++) {
    for (let b = 0; b < plan.xs.length; b++) {
      const [y0, x0] = [plan.ys[a]!, plan.xs[b]!];
      const res = await runTile(img, w, cin, y0, x0, plan.th, plan.tw, mult, model);
      if (!out) {
        cout = res.cout;
        out = new Float32Array(h * w * cout);
        norm = single ? null : new Float32Array(h * w);
      }
      if (res.cout !== cout) throw new GatedError('shape', 'the model returned a different channel count for another tile');
      for (let i = 0; i < plan.th; i++) {
        for (let j = 0; j < plan.tw; j++) {
          const wt = single ? 1 : wy[a]![i]! * wx[b]![j]!;
          if (wt === 0) continue;
          const p = (y0 + i) * w + (x0 + j);
          const q = (i * plan.tw + j) * cout;
          for (let c = 0; c < cout; c++) out[p * cout + c]! += wt * res.data[q + c]!;
          if (norm) norm[p]! += wt;
        }
      }
      opts.onTile?.(++done, total);
    }
  }
  if (norm) {
    for (let p = 0; p < h * w; p++) {
      const n = norm[p]!;
      if (!(n > 0)) throw new GatedError('internal', `tiling left pixel ${p} without a tile`);
      for (let c = 0; c < cout; c++) out![p * cout + c]! /= n;
    }
  }
  return { out: out!, cout };
}

/**
 * Seam score of an image [h, w, c]: mean absolute step across the given tile-boundary columns and rows,
 * divided by the mean step everywhere. About 1 when tiles left no trace; well above 1 for visible seams.
 */
export function seamScore(img: Float32Array, h: number, w: number, c: number, cols: number[], rows: number[]): number {
  const step = (p: number, q: number) => {
    let s = 0;
    for (let k = 0; k < c; k++) s += Math.abs(img[p * c + k]! - img[q * c + k]!);
    return s / c;
  };
  let all = 0;
  let n = 0;
  for (let i = 0; i < h; i++) for (let j = 1; j < w; j++) (all += step(i * w + j, i * w + j - 1)), n++;
  for (let i = 1; i < h; i++) for (let j = 0; j < w; j++) (all += step(i * w + j, (i - 1) * w + j)), n++;
  let seam = 0;
  let m = 0;
  for (const j of cols) if (j > 0 && j < w) for (let i = 0; i < h; i++) (seam += step(i * w + j, i * w + j - 1)), m++;
  for (const i of rows) if (i > 0 && i < h) for (let j = 0; j < w; j++) (seam += step(i * w + j, (i - 1) * w + j)), m++;
  if (m === 0 || all === 0) return 1;
  return seam / m / (all / n);
}

// --- internal ---

/** Weight along one tile axis: 0 within `margin` of an inner edge, then a linear ramp over `ramp` pixels. */
function axisWeights(n: number, innerStart: boolean, innerEnd: boolean, margin: number, ramp: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let wt = 1;
    for (const [inner, d] of [[innerStart, i], [innerEnd, n - 1 - i]] as const) {
      if (!inner) continue;
      wt = Math.min(wt, d < margin ? 0 : Math.min(1, (d - margin + 1) / (ramp + 1)));
    }
    out[i] = wt;
  }
  return out;
}

/** One tile through the model, padded up to the size multiple by replicating the border. */
async function runTile(img: Float32Array, w: number, cin: number, y0: number, x0: number, th: number, tw: number, mult: number, model: ImageModel): Promise<{ data: Float32Array; cout: number }> {
  const ph = Math.ceil(th / mult) * mult;
  const pw = Math.ceil(tw / mult) * mult;
  const buf = new Float32Array(ph * pw * cin);
  for (let i = 0; i < ph; i++) {
    const si = y0 + Math.min(i, th - 1);
    for (let j = 0; j < pw; j++) {
      const sj = x0 + Math.min(j, tw - 1);
      for (let c = 0; c < cin; c++) buf[(i * pw + j) * cin + c] = img[(si * w + sj) * cin + c]!;
    }
  }
  const x = tf.tensor4d(buf, [1, ph, pw, cin]);
  let y: tf.Tensor4D;
  try {
    y = model(x);
  } finally {
    x.dispose();
  }
  const cout = y.shape[3];
  if (y.shape[1] !== ph || y.shape[2] !== pw) {
    y.dispose();
    throw new GatedError('shape', `the model returned ${y.shape[1]}x${y.shape[2]} for a ${ph}x${pw} input; restoration needs the input size back`);
  }
  // asynchronous read: WebGPU in Node has no synchronous read-back
  let full: Float32Array;
  try {
    full = (await y.data()) as Float32Array;
  } finally {
    y.dispose();
  }
  if (ph === th && pw === tw) return { data: full, cout };
  const data = new Float32Array(th * tw * cout);
  for (let i = 0; i < th; i++) data.set(full.subarray(i * pw * cout, (i * pw + tw) * cout), i * tw * cout);
  return { data, cout };
}
