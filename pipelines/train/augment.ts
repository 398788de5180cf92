/**
 * Augmentation of one 2.5D training sample, on the CPU and in place of the crop: a random similarity warp
 * (rotation, isotropic scale, left-right flip) sampled bilinearly for the image and by nearest neighbour for
 * the labels, then intensity changes relative to the background level (contrast, brightness, gamma, a smooth
 * multiplicative bias field, Gaussian noise) — what MR users feed us: other scanners, other gains, other coils.
 */
import { GatedError } from '../../core/errors.ts';
import type { Rng } from './rng.ts';

export interface AugmentConfig {
  rotateDeg: number;
  scale: [number, number];
  flipLR: boolean;
  contrast: [number, number];
  brightness: number;
  gamma: [number, number];
  biasField: number;
  noise: number;
  /** Probability of applying the intensity changes to a sample. */
  intensityP: number;
}

export const AUGMENT_DEFAULTS: AugmentConfig = { rotateDeg: 15, scale: [0.7, 1.4], flipLR: true, contrast: [0.75, 1.25], brightness: 0.1, gamma: [0.7, 1.5], biasField: 0.3, noise: 0.05, intensityP: 0.8 };
export const AUGMENT_NONE: AugmentConfig = { rotateDeg: 0, scale: [1, 1], flipLR: false, contrast: [1, 1], brightness: 0, gamma: [1, 1], biasField: 0, noise: 0, intensityP: 0 };

/**
 * `--augment`: `default`, `none`, or `key=value` pairs over the defaults (ranges as `lo:hi`, flipLR as
 * true/false), e.g. `rotateDeg=8,scale=0.85:1.2,intensityP=0.3` for a last, gentler fine-tuning stage.
 */
export function parseAugment(text: string): AugmentConfig {
  const t = text.trim();
  if (t === 'default' || t === '') return { ...AUGMENT_DEFAULTS };
  if (t === 'none') return { ...AUGMENT_NONE, scale: [1, 1], contrast: [1, 1], gamma: [1, 1] };
  const cfg: AugmentConfig = { ...AUGMENT_DEFAULTS };
  const bad = (why: string) => new GatedError('usage', `--augment: ${why} (keys: ${Object.keys(AUGMENT_DEFAULTS).join(', ')}; e.g. rotateDeg=8,scale=0.85:1.2)`);
  for (const pair of t.split(',')) {
    const [key, value, ...extra] = pair.split('=').map((x) => x.trim());
    if (!key || value === undefined || extra.length > 0) throw bad(`'${pair}' is not key=value`);
    if (!(key in AUGMENT_DEFAULTS)) throw bad(`unknown key '${key}'`);
    const k = key as keyof AugmentConfig;
    const num = (x: string) => {
      const n = Number(x);
      if (x === '' || !Number.isFinite(n) || n < 0) throw bad(`${key} needs non-negative numbers; got '${value}'`);
      return n;
    };
    const def = AUGMENT_DEFAULTS[k];
    if (typeof def === 'boolean') {
      if (value !== 'true' && value !== 'false') throw bad(`${key} is true or false; got '${value}'`);
      (cfg as unknown as Record<string, unknown>)[k] = value === 'true';
    } else if (Array.isArray(def)) {
      const [lo, hi, ...more] = value.split(':');
      if (lo === undefined || hi === undefined || more.length > 0) throw bad(`${key} is a range lo:hi; got '${value}'`);
      const r: [number, number] = [num(lo), num(hi)];
      if (r[0] > r[1] || ((k === 'scale' || k === 'gamma') && r[0] <= 0)) throw bad(`${key} range '${value}' is empty or not positive`);
      (cfg as unknown as Record<string, unknown>)[k] = r;
    } else {
      const n = num(value);
      if (k === 'intensityP' && n > 1) throw bad(`intensityP is a probability; got '${value}'`);
      (cfg as unknown as Record<string, unknown>)[k] = n;
    }
  }
  return cfg;
}

/**
 * Samples src [H, W, C] (labels [H, W]) into out [P, P, C] / outLab [P, P], centred on (cy, cx) of the source.
 * Pixels falling outside the source take `fill` (image) and 0 (labels).
 */
export function warpSample(
  src: Float32Array, lab: Uint8Array | null, H: number, W: number, C: number,
  out: Float32Array, outLab: Uint8Array | null, P: number, cy: number, cx: number, fill: number,
  cfg: AugmentConfig, rng: Rng,
): void {
  const ang = (rng.uniform(-cfg.rotateDeg, cfg.rotateDeg) * Math.PI) / 180;
  const s = Math.exp(rng.uniform(Math.log(cfg.scale[0]), Math.log(cfg.scale[1])));
  const flip = cfg.flipLR && rng.next() < 0.5 ? -1 : 1;
  // output pixel (u, v) about the patch centre → source (y, x): inverse of scale·rotation, flip on x
  const cos = Math.cos(ang) / s;
  const sin = Math.sin(ang) / s;
  const half = (P - 1) / 2;
  // the four neighbours' weights and offsets are computed once per output pixel and shared by the channels;
  // the arithmetic is the same per value as a per-channel lookup, so results do not depend on this layout
  for (let v = 0; v < P; v++) {
    const dv = v - half;
    for (let u = 0; u < P; u++) {
      const du = (u - half) * flip;
      const x = cx + cos * du - sin * dv;
      const y = cy + sin * du + cos * dv;
      const o = (v * P + u) * C;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const fx = x - x0;
      const fy = y - y0;
      const in00 = y0 >= 0 && y0 < H && x0 >= 0 && x0 < W;
      const in01 = y0 >= 0 && y0 < H && x0 + 1 >= 0 && x0 + 1 < W;
      const in10 = y0 + 1 >= 0 && y0 + 1 < H && x0 >= 0 && x0 < W;
      const in11 = y0 + 1 >= 0 && y0 + 1 < H && x0 + 1 >= 0 && x0 + 1 < W;
      const p00 = (y0 * W + x0) * C;
      const p10 = p00 + W * C;
      for (let c = 0; c < C; c++) {
        const v00 = in00 ? src[p00 + c]! : fill;
        const v01 = in01 ? src[p00 + C + c]! : fill;
        const v10 = in10 ? src[p10 + c]! : fill;
        const v11 = in11 ? src[p10 + C + c]! : fill;
        out[o + c] = (1 - fy) * ((1 - fx) * v00 + fx * v01) + fy * ((1 - fx) * v10 + fx * v11);
      }
      if (lab && outLab) {
        const xi = Math.round(x);
        const yi = Math.round(y);
        outLab[v * P + u] = yi >= 0 && yi < H && xi >= 0 && xi < W ? lab[yi * W + xi]! : 0;
      }
    }
  }
}

/** Intensity changes on out [P, P, C] relative to the background level `bg`. */
export function augmentIntensity(out: Float32Array, P: number, C: number, bg: number, cfg: AugmentConfig, rng: Rng): void {
  if (rng.next() >= cfg.intensityP) return;
  const a = rng.uniform(cfg.contrast[0], cfg.contrast[1]);
  const b = rng.uniform(-cfg.brightness, cfg.brightness);
  const g = Math.exp(rng.uniform(Math.log(cfg.gamma[0]), Math.log(cfg.gamma[1])));
  // a smooth field: exp of a random second-order polynomial over the patch, amplitude biasField
  const k = Array.from({ length: 6 }, () => rng.uniform(-cfg.biasField, cfg.biasField));
  const sd = cfg.noise * rng.next();
  let hi = -Infinity;
  for (let i = 0; i < out.length; i++) if (out[i]! > hi) hi = out[i]!;
  const range = Math.max(hi - bg, 1e-6);
  const [k0, k1, k2, k3, k4, k5] = k as [number, number, number, number, number, number];
  const den = Math.max(P - 1, 1);
  for (let v = 0; v < P; v++) {
    const y = (2 * v) / den - 1;
    for (let u = 0; u < P; u++) {
      const x = (2 * u) / den - 1;
      const field = Math.exp(k0 * x + k1 * y + k2 * x * y + k3 * x * x + k4 * y * y + k5 * 0.5);
      for (let c = 0; c < C; c++) {
        const i = (v * P + u) * C + c;
        const t = Math.max(0, (out[i]! - bg) / range);
        out[i] = bg + range * (Math.pow(t, g) * a * field + b) + sd * rng.normal();
      }
    }
  }
}
