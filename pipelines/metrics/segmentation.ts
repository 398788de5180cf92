/**
 * Segmentation metrics per label on label maps of the same grid: Dice, IoU, HD95 and surface Dice in mm
 * (MONAI's definitions: surfaces are the voxels of a label with a 6-neighbour outside it; HD95 is the
 * larger of the two directed 95th-percentile surface distances).
 */
import { GatedError } from '../../core/errors.ts';
import { distanceTransform } from './edt.ts';

export interface LabelMetrics {
  label: number;
  dice: number;
  iou: number;
  hd95: number;
  surfaceDice: number;
  predVoxels: number;
  refVoxels: number;
}

export type LabelArray = Uint8Array | Uint16Array | Int16Array | Int32Array | Uint32Array | Int8Array | Float32Array | Float64Array;

export function segmentationMetrics(pred: LabelArray, ref: LabelArray, shape: readonly number[], spacing: readonly number[], labels: readonly number[], tolerance = 1): LabelMetrics[] {
  if (pred.length !== ref.length) throw new GatedError('shape', `prediction has ${pred.length} voxels, reference ${ref.length}`);
  return labels.map((label) => {
    const a = mask(pred, label);
    const b = mask(ref, label);
    let inter = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < a.length; i++) {
      na += a[i]!;
      nb += b[i]!;
      inter += a[i]! & b[i]!;
    }
    const dice = na + nb === 0 ? 1 : (2 * inter) / (na + nb);
    const iou = na + nb - inter === 0 ? 1 : inter / (na + nb - inter);
    const { hd95, surfaceDice } = surfaceMetrics(a, b, shape, spacing, tolerance);
    return { label, dice, iou, hd95, surfaceDice, predVoxels: na, refVoxels: nb };
  });
}

export function surface(m: Uint8Array, shape: readonly number[]): Uint8Array {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const out = new Uint8Array(m.length);
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) {
        const p = i + nx * (j + ny * k);
        if (!m[p]) continue;
        // voxels on the grid border count as surface: outside the grid is background
        const inside = (di: number, dj: number, dk: number) => {
          const x = i + di, y = j + dj, z = k + dk;
          if (x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz) return nz === 1 && dk !== 0;
          return m[x + nx * (y + ny * z)] === 1;
        };
        if (!(inside(1, 0, 0) && inside(-1, 0, 0) && inside(0, 1, 0) && inside(0, -1, 0) && inside(0, 0, 1) && inside(0, 0, -1))) out[p] = 1;
      }
  return out;
}

// --- internal ---

function mask(a: LabelArray, label: number): Uint8Array {
  const m = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) m[i] = a[i] === label ? 1 : 0;
  return m;
}

function surfaceMetrics(a: Uint8Array, b: Uint8Array, shape: readonly number[], spacing: readonly number[], tol: number): { hd95: number; surfaceDice: number } {
  const sa = surface(a, shape);
  const sb = surface(b, shape);
  const anyA = sa.some((x) => x === 1);
  const anyB = sb.some((x) => x === 1);
  if (!anyA && !anyB) return { hd95: 0, surfaceDice: 1 };
  if (!anyA || !anyB) return { hd95: Infinity, surfaceDice: 0 };
  const da = distanceTransform(sb, shape, spacing); // distance to B's surface
  const db = distanceTransform(sa, shape, spacing);
  const ab: number[] = [];
  const ba: number[] = [];
  for (let i = 0; i < sa.length; i++) {
    if (sa[i]) ab.push(da[i]!);
    if (sb[i]) ba.push(db[i]!);
  }
  const hd95 = Math.max(percentile(ab, 95), percentile(ba, 95));
  const within = ab.filter((d) => d <= tol).length + ba.filter((d) => d <= tol).length;
  return { hd95, surfaceDice: within / (ab.length + ba.length) };
}

/** numpy.percentile's default (linear interpolation between closest ranks). */
export function percentile(values: number[], q: number): number {
  const s = [...values].sort((x, y) => x - y);
  const pos = ((s.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}
