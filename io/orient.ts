/**
 * Reorientation by axis permutation and flips only (no resampling), as nibabel's `as_closest_canonical`:
 * the voxel grid is rearranged so that index axes run closest to R, A, S, and the affine is updated so
 * every voxel keeps its world position exactly.
 */
import { GatedError } from '../core/errors.ts';
import { axisCodes, axisVector, matmul4, type Mat4 } from './geometry.ts';
import { allocate, type Volume, type VoxelArray } from './volume.ts';

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
  const { affine, spacing } = reorientGeometry(volume.affine, volume.spacing, inShape, map);
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

/** The affine and spacing of a grid of shape `inShape` once `map` is applied (voxels keep their world positions). */
export function reorientGeometry(inAffine: Mat4, inSpacing: readonly number[], inShape: readonly number[], map: AxisMap): { affine: Mat4; spacing: number[] } {
  const { perm, flip } = map;
  const outShape = [inShape[perm[0]]!, inShape[perm[1]]!, inShape[perm[2]]!];
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
  const spacing = [inSpacing[perm[0]]!, inSpacing[perm[1]]!, inSpacing[perm[2]]!, ...inSpacing.slice(3)];
  return { affine: matmul4(inAffine, T), spacing };
}

/**
 * Reverses the x, y and/or z axes of a 3D array where it lies. A flip is its own inverse, so this also takes a
 * flipped grid back without a second array: one row or one slice of scratch at most.
 */
export function flipInPlace(data: VoxelArray | Uint8Array | Uint16Array, shape: readonly number[], flip: readonly [boolean, boolean, boolean]): void {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const plane = nx * ny;
  if (data.length < plane * nz) throw new GatedError('internal', `${data.length} values flipped as a grid of ${plane * nz}`);
  if (flip[0]) for (let r = 0; r < ny * nz; r++) data.subarray(r * nx, (r + 1) * nx).reverse();
  if (flip[1] && ny > 1) {
    const row = data.slice(0, nx);
    for (let z = 0; z < nz; z++) {
      for (let a = z * plane, b = a + (ny - 1) * nx; a < b; a += nx, b -= nx) {
        row.set(data.subarray(a, a + nx));
        data.copyWithin(a, b, b + nx);
        data.set(row as never, b);
      }
    }
  }
  if (flip[2] && nz > 1) {
    const slice = data.slice(0, plane);
    for (let a = 0, b = (nz - 1) * plane; a < b; a += plane, b -= plane) {
      slice.set(data.subarray(a, a + plane));
      data.copyWithin(a, b, b + plane);
      data.set(slice as never, b);
    }
  }
}
