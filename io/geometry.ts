/**
 * Geometry: 4x4 affines (row-major), DICOM LPS <-> NIfTI RAS, axis codes. Everything here is exact
 * arithmetic on small matrices; no reader computes positions any other way.
 */
import { GatedError } from '../core/errors.ts';

export type Vec3 = [number, number, number];
/** Row-major 4x4: world = A · [i, j, k, 1]ᵀ. */
export type Mat4 = number[][];

/** LPS (DICOM patient) and RAS (NIfTI world) differ by a flip of the first two world axes. */
export const LPS_TO_RAS: Mat4 = [
  [-1, 0, 0, 0],
  [0, -1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
];

export function identity4(): Mat4 {
  return [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ];
}

export function matmul4(a: Mat4, b: Mat4): Mat4 {
  const out = identity4();
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[r]![k]! * b[k]![c]!;
      out[r]![c] = s;
    }
  }
  return out;
}

/** LPS affine -> RAS affine (and back: the map is its own inverse). */
export function lpsToRas(affineLps: Mat4): Mat4 {
  return matmul4(LPS_TO_RAS, affineLps);
}
export const rasToLps = lpsToRas;

export function applyAffine(a: Mat4, p: readonly number[]): Vec3 {
  const [x = 0, y = 0, z = 0] = p;
  return [
    a[0]![0]! * x + a[0]![1]! * y + a[0]![2]! * z + a[0]![3]!,
    a[1]![0]! * x + a[1]![1]! * y + a[1]![2]! * z + a[1]![3]!,
    a[2]![0]! * x + a[2]![1]! * y + a[2]![2]! * z + a[2]![3]!,
  ];
}

export function invert4(m: Mat4): Mat4 {
  // Gauss-Jordan with partial pivoting; affines are well conditioned, but pivoting costs nothing.
  const a = m.map((row, r) => [...row, ...identity4()[r]!]);
  for (let c = 0; c < 4; c++) {
    let p = c;
    for (let r = c + 1; r < 4; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    if (Math.abs(a[p]![c]!) < 1e-12) throw new GatedError('bad_geometry', 'affine is singular');
    [a[c], a[p]] = [a[p]!, a[c]!];
    const piv = a[c]![c]!;
    for (let k = 0; k < 8; k++) a[c]![k]! /= piv;
    for (let r = 0; r < 4; r++) {
      if (r === c) continue;
      const f = a[r]![c]!;
      if (f === 0) continue;
      for (let k = 0; k < 8; k++) a[r]![k]! -= f * a[c]![k]!;
    }
  }
  return a.map((row) => row.slice(4));
}

export function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
export function dot(a: readonly number[], b: readonly number[]): number {
  return (a[0] ?? 0) * (b[0] ?? 0) + (a[1] ?? 0) * (b[1] ?? 0) + (a[2] ?? 0) * (b[2] ?? 0);
}
export function norm(a: readonly number[]): number {
  return Math.sqrt(dot(a, a));
}
export function sub(a: readonly number[], b: readonly number[]): Vec3 {
  return [(a[0] ?? 0) - (b[0] ?? 0), (a[1] ?? 0) - (b[1] ?? 0), (a[2] ?? 0) - (b[2] ?? 0)];
}
export function scale(a: readonly number[], s: number): Vec3 {
  return [(a[0] ?? 0) * s, (a[1] ?? 0) * s, (a[2] ?? 0) * s];
}

/** Column j of the 3x3 part. */
export function axisVector(a: Mat4, j: number): Vec3 {
  return [a[0]![j]!, a[1]![j]!, a[2]![j]!];
}

/** Voxel sizes: the norms of the affine's first three columns. */
export function spacingFromAffine(a: Mat4): Vec3 {
  return [norm(axisVector(a, 0)), norm(axisVector(a, 1)), norm(axisVector(a, 2))];
}

/**
 * The affine of a DICOM slice stack, in RAS.
 * DICOM: ImageOrientationPatient = [row direction (along increasing column index), column direction];
 * PixelSpacing = [spacing between rows, spacing between columns]; voxel (i = column, j = row, k = slice).
 * `sliceStep` is the LPS vector from slice k to slice k+1 (from positions, never SliceThickness).
 */
export function dicomAffine(iop: readonly number[], ipp0: readonly number[], pixelSpacing: readonly number[], sliceStep: readonly number[]): Mat4 {
  if (iop.length !== 6 || ipp0.length !== 3 || pixelSpacing.length !== 2 || sliceStep.length !== 3) {
    throw new GatedError('bad_geometry', 'orientation, position or pixel spacing has the wrong number of values');
  }
  const rowDir = iop.slice(0, 3) as Vec3;
  const colDir = iop.slice(3, 6) as Vec3;
  const [rowSpacing, colSpacing] = pixelSpacing as [number, number];
  const lps: Mat4 = [
    [rowDir[0] * colSpacing, colDir[0] * rowSpacing, sliceStep[0]!, ipp0[0]!],
    [rowDir[1] * colSpacing, colDir[1] * rowSpacing, sliceStep[1]!, ipp0[1]!],
    [rowDir[2] * colSpacing, colDir[2] * rowSpacing, sliceStep[2]!, ipp0[2]!],
    [0, 0, 0, 1],
  ];
  return lpsToRas(lps);
}

/**
 * Axis codes of an affine's voxel axes in RAS world, as nibabel's `aff2axcodes`: for each voxel axis,
 * the world axis it is closest to and the direction of increasing index (R/L, A/P, S/I).
 */
export function axisCodes(a: Mat4): string {
  const labels: [string, string][] = [
    ['L', 'R'],
    ['P', 'A'],
    ['I', 'S'],
  ];
  const used = new Set<number>();
  const out: string[] = [];
  // Greedy on the largest absolute cosines, so oblique axes still get distinct world axes.
  const cand: { v: number; w: number; mag: number; sign: number }[] = [];
  for (let v = 0; v < 3; v++) {
    const col = axisVector(a, v);
    const n = norm(col) || 1;
    for (let w = 0; w < 3; w++) cand.push({ v, w, mag: Math.abs(col[w]! / n), sign: Math.sign(col[w]!) });
  }
  cand.sort((x, y) => y.mag - x.mag);
  const assigned = new Map<number, string>();
  for (const c of cand) {
    if (assigned.has(c.v) || used.has(c.w)) continue;
    assigned.set(c.v, labels[c.w]![c.sign >= 0 ? 1 : 0]!);
    used.add(c.w);
  }
  for (let v = 0; v < 3; v++) out.push(assigned.get(v) ?? '?');
  return out.join('');
}

/** Largest angle (degrees) between the slice axis and the normal of the in-plane axes: gantry tilt / shear. */
export function sliceShearDegrees(a: Mat4): number {
  const n = cross(axisVector(a, 0), axisVector(a, 1));
  const s = axisVector(a, 2);
  const c = Math.abs(dot(n, s)) / (norm(n) * norm(s) || 1);
  return (Math.acos(Math.min(1, c)) * 180) / Math.PI;
}

export function affinesClose(a: Mat4, b: Mat4, atol = 1e-4): boolean {
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) if (Math.abs(a[r]![c]! - b[r]![c]!) > atol) return false;
  return true;
}
