/**
 * NIfTI qform: quaternion + qfac + pixdim <-> 4x4 affine, following the NIfTI-1 standard's formulas
 * (the same conventions nibabel implements), including the nearest-rotation fit for sheared affines.
 */
import { GatedError } from '../../core/errors.ts';
import type { Mat4 } from '../geometry.ts';

export interface QForm {
  quatern: [number, number, number];
  qoffset: [number, number, number];
  /** pixdim[1..3] (positive) */
  zooms: [number, number, number];
  qfac: 1 | -1;
}

/**
 * The qform as a matrix. `a` is recovered from (b, c, d) of a unit quaternion; a sum of squares above 1
 * by more than the stored precision (`tolerance`, a few float eps) is not a rotation and is refused, as
 * nibabel refuses it. The rotation is built for a possibly non-unit quaternion (scaled by 2/|q|²), so a
 * float32-rounded one still gives an orthogonal matrix.
 */
export function qformToAffine(q: QForm, tolerance: number): Mat4 {
  const [b, c, d] = q.quatern;
  const a2 = 1 - (b * b + c * c + d * d);
  if (!(a2 >= -tolerance)) {
    throw new GatedError('bad_geometry', `the qform quaternion (${b}, ${c}, ${d}) is longer than 1; it is not a rotation`);
  }
  const a = a2 > 0 ? Math.sqrt(a2) : 0;
  const s = 2 / (a * a + b * b + c * c + d * d);
  const R = [
    [1 - s * (c * c + d * d), s * (b * c - a * d), s * (b * d + a * c)],
    [s * (b * c + a * d), 1 - s * (b * b + d * d), s * (c * d - a * b)],
    [s * (b * d - a * c), s * (c * d + a * b), 1 - s * (b * b + c * c)],
  ];
  const z = [q.zooms[0], q.zooms[1], q.zooms[2] * q.qfac];
  return [
    [R[0]![0]! * z[0]!, R[0]![1]! * z[1]!, R[0]![2]! * z[2]!, q.qoffset[0]],
    [R[1]![0]! * z[0]!, R[1]![1]! * z[1]!, R[1]![2]! * z[2]!, q.qoffset[1]],
    [R[2]![0]! * z[0]!, R[2]![1]! * z[1]!, R[2]![2]! * z[2]!, q.qoffset[2]],
    [0, 0, 0, 1],
  ];
}

/** The qform that best represents an affine (exact unless the affine has shear). */
export function affineToQform(affine: Mat4): QForm {
  const M = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r]![c]!));
  const zooms = [0, 1, 2].map((c) => Math.hypot(M[0]![c]!, M[1]![c]!, M[2]![c]!) || 1) as [number, number, number];
  let R = M.map((row) => row.map((v, c) => v / zooms[c]!));
  let qfac: 1 | -1 = 1;
  if (det3(R) < 0) {
    qfac = -1;
    for (let r = 0; r < 3; r++) R[r]![2] = -R[r]![2]!;
  }
  R = nearestRotation(R);
  const [b, c, d] = rotationToQuaternion(R);
  return { quatern: [b, c, d], qoffset: [affine[0]![3]!, affine[1]![3]!, affine[2]![3]!], zooms, qfac };
}

// --- internal ---

function det3(m: number[][]): number {
  return (
    m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
    m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
    m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!)
  );
}

/** Polar decomposition by Newton iteration R ← (R + R⁻ᵀ)/2: converges to the closest orthogonal matrix. */
function nearestRotation(m: number[][]): number[][] {
  let R = m.map((r) => [...r]);
  for (let it = 0; it < 50; it++) {
    const inv = invert3(R);
    const next = R.map((row, i) => row.map((v, j) => 0.5 * (v + inv[j]![i]!)));
    let diff = 0;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) diff = Math.max(diff, Math.abs(next[i]![j]! - R[i]![j]!));
    R = next;
    if (diff < 1e-15) break;
  }
  return R;
}

function invert3(m: number[][]): number[][] {
  const d = det3(m);
  const [a, b, c] = m[0]!;
  const [e, f, g] = m[1]!;
  const [h, i, j] = m[2]!;
  return [
    [(f! * j! - g! * i!) / d, (c! * i! - b! * j!) / d, (b! * g! - c! * f!) / d],
    [(g! * h! - e! * j!) / d, (a! * j! - c! * h!) / d, (c! * e! - a! * g!) / d],
    [(e! * i! - f! * h!) / d, (b! * h! - a! * i!) / d, (a! * f! - b! * e!) / d],
  ];
}

/** Quaternion (b, c, d) with a ≥ 0, as the standard requires. */
function rotationToQuaternion(R: number[][]): [number, number, number] {
  const [r11, r12, r13] = R[0] as [number, number, number];
  const [r21, r22, r23] = R[1] as [number, number, number];
  const [r31, r32, r33] = R[2] as [number, number, number];
  const trace = r11 + r22 + r33;
  let a: number, b: number, c: number, d: number;
  if (trace > 0.5) {
    a = 0.5 * Math.sqrt(1 + trace);
    b = (r32 - r23) / (4 * a);
    c = (r13 - r31) / (4 * a);
    d = (r21 - r12) / (4 * a);
  } else if (r11 > r22 && r11 > r33) {
    b = 0.5 * Math.sqrt(1 + r11 - r22 - r33);
    a = (r32 - r23) / (4 * b);
    c = (r12 + r21) / (4 * b);
    d = (r13 + r31) / (4 * b);
  } else if (r22 > r33) {
    c = 0.5 * Math.sqrt(1 + r22 - r11 - r33);
    a = (r13 - r31) / (4 * c);
    b = (r12 + r21) / (4 * c);
    d = (r23 + r32) / (4 * c);
  } else {
    d = 0.5 * Math.sqrt(1 + r33 - r11 - r22);
    a = (r21 - r12) / (4 * d);
    b = (r13 + r31) / (4 * d);
    c = (r23 + r32) / (4 * d);
  }
  if (a < 0) [b, c, d] = [-b, -c, -d];
  return [b, c, d];
}
