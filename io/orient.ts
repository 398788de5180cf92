/**
 * Reorientation by axis permutation and flips only (no resampling), as nibabel's `as_closest_canonical`:
 * the voxel grid is rearranged so that index axes run closest to R, A, S, and the affine is updated so
 * every voxel keeps its world position exactly.
 */
import { axisCodes, axisVector, matmul4, type Mat4 } from './geometry.ts';
import { allocate, type Volume } from './volume.ts';

export interface AxisMap {
  /** For each output axis, the input axis it comes from. */
  perm: [number, number, number];
  /** For each output axis, whether it runs opposite to the input axis. */
  flip: [boolean, boolean, boolean];
}

/** The permutation/flips that bring an affine's axes closest to `target` (default 'RAS'). */
export function axisMapTo(affine: Mat4, target = 'RAS'): AxisMap {
  const worldOf: Record<string, [number, number]> = { R: [0, 1], L: [0, -1], A: [1, 1], P: [1, -1], S: [2, 1], I: [2, -1] };
  // For each input voxel axis: the world axis it is closest to and its sign (greedy on largest cosine).
  const cand: { v: number; w: number; mag: number; sign: number }[] = [];
  for (let v = 0; v < 3; v++) {
    const col = axisVector(affine, v);
    const n = Math.hypot(...col) || 1;
    for (let w = 0; w < 3; w++) cand.push({ v, w, mag: Math.abs(col[w]! / n), sign: col[w]! >= 0 ? 1 : -1 });
  }
  cand.sort((x, y) => y.mag - x.mag);
  const inWorld = new Map<number, { w: number; sign: number }>();
  const usedW = new Set<number>();
  for (const c of cand) {
    if (inWorld.has(c.v) || usedW.has(c.w)) continue;
    inWorld.set(c.v, { w: c.w, sign: c.sign });
    usedW.add(c.w);
  }
  const perm: [number, number, number] = [0, 1, 2];
  const flip: [boolean, boolean, boolean] = [false, false, false];
  for (let o = 0; o < 3; o++) {
    const [w, sign] = worldOf[target[o]!]!;
    for (const [v, m] of inWorld) {
      if (m.w === w) {
        perm[o] = v;
        flip[o] = m.sign !== sign;
      }
    }
  }
  return { perm, flip };
}

/** Applies an axis map to a volume (any 4th axis is carried along unchanged). */
export function reorient(volume: Volume, map: AxisMap): Volume {
  const { perm, flip } = map;
  const [nx = 1, ny = 1, nz = 1] = volume.shape;
  const nt = volume.shape[3] ?? 1;
  const inShape = [nx, ny, nz];
  const outShape = [inShape[perm[0]]!, inShape[perm[1]]!, inShape[perm[2]]!];
  const inStride = [1, nx, nx * ny];
  const n3 = nx * ny * nz;
  const out = allocate(volume.dtype, volume.data.length);
  // Per output axis: step in the input buffer and the input offset of output index 0.
  const step = [0, 1, 2].map((o) => (flip[o] ? -1 : 1) * inStride[perm[o]!]!);
  const base = [0, 1, 2].reduce((acc, o) => acc + (flip[o] ? (outShape[o]! - 1) * inStride[perm[o]!]! : 0), 0);
  const [ox, oy, oz] = outShape as [number, number, number];
  for (let t = 0; t < nt; t++) {
    const tOff = t * n3;
    let w = tOff;
    for (let k = 0; k < oz; k++) {
      for (let j = 0; j < oy; j++) {
        let r = tOff + base + k * step[2]! + j * step[1]!;
        for (let i = 0; i < ox; i++, r += step[0]!) out[w++] = volume.data[r]!;
      }
    }
  }
  // index_in = P · index_out + offset; affine_out = affine_in · T
  const T: Mat4 = [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 1],
  ];
  for (let o = 0; o < 3; o++) {
    T[perm[o]!]![o] = flip[o] ? -1 : 1;
    if (flip[o]) T[perm[o]!]![3] = outShape[o]! - 1;
  }
  const affine = matmul4(volume.affine, T);
  const spacing = [volume.spacing[perm[0]]!, volume.spacing[perm[1]]!, volume.spacing[perm[2]]!, ...volume.spacing.slice(3)];
  return {
    ...volume,
    data: out,
    shape: volume.shape.length > 3 ? [...outShape, nt] : outShape,
    spacing,
    affine,
    meta: { ...volume.meta, orientation: axisCodes(affine), warnings: [...volume.meta.warnings] },
  };
}

/** The volume rearranged so that its axes run closest to R, A, S. */
export function toCanonical(volume: Volume, target = 'RAS'): Volume {
  return reorient(volume, axisMapTo(volume.affine, target));
}
