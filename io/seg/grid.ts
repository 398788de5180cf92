/**
 * Where each source voxel's label lives in a label map. The map may sit on the source grid itself or on
 * an axis permutation/flip of it (a canonical reorientation); then every source voxel has exactly one
 * label voxel and no resampling happens. Anything else is refused, never interpolated.
 */
import { GatedError } from '../../core/errors.ts';
import { invert4, matmul4, type Mat4 } from '../geometry.ts';
import type { Volume } from '../volume.ts';

/** Label-data index of source voxel (i, j, k) = base + i·strides[0] + j·strides[1] + k·strides[2]. */
export interface GridMap {
  base: number;
  strides: [number, number, number];
}

/** The largest distance (in voxels) any voxel centre may move when matching the grids. */
const VOXEL_TOL = 1e-3;

export function mapToSourceGrid(labels: Volume, sourceShape: readonly number[], sourceAffine: Mat4): GridMap {
  const sdims = sourceShape.slice(0, 3);
  const ldims = [labels.shape[0] ?? 1, labels.shape[1] ?? 1, labels.shape[2] ?? 1];
  if (labels.shape.length < 2 || labels.shape.length > 4 || (labels.shape.length === 4 && labels.shape[3] !== 1)) {
    throw new GatedError('bad_geometry', `a label map is one 3D volume; got shape ${labels.shape.join('x')}`);
  }
  if (labels.data.length !== ldims[0]! * ldims[1]! * ldims[2]!) {
    throw new GatedError('bad_geometry', `label data holds ${labels.data.length} values for shape ${labels.shape.join('x')}`);
  }
  // T takes source voxel indices to label voxel indices; it must be a signed permutation plus an offset.
  const T = matmul4(invert4(labels.affine), sourceAffine);
  const perm: number[] = [];
  const sign: number[] = [];
  for (let c = 0; c < 3; c++) {
    let best = 0;
    for (let r = 1; r < 3; r++) if (Math.abs(T[r]![c]!) > Math.abs(T[best]![c]!)) best = r;
    perm.push(best);
    sign.push(T[best]![c]! < 0 ? -1 : 1);
  }
  const mismatch = () =>
    new GatedError('bad_geometry', 'the label map is not on the source grid, nor on a flip/permutation of it', {
      details: { labelShape: labels.shape, sourceShape: sdims },
    });
  if (new Set(perm).size !== 3) throw mismatch();
  for (let c = 0; c < 3; c++) if (ldims[perm[c]!] !== sdims[c]) throw mismatch();
  const off = [0, 0, 0];
  for (let c = 0; c < 3; c++) off[perm[c]!] = sign[c]! > 0 ? 0 : sdims[c]! - 1;
  // Worst displacement over the grid between T and the exact permutation it should be.
  for (let r = 0; r < 3; r++) {
    let worst = Math.abs(T[r]![3]! - off[r]!);
    for (let c = 0; c < 3; c++) {
      const want = perm[c] === r ? sign[c]! : 0;
      worst += Math.abs(T[r]![c]! - want) * Math.max(1, sdims[c]! - 1);
    }
    if (worst > VOXEL_TOL) throw mismatch();
  }
  const lstride = [1, ldims[0]!, ldims[0]! * ldims[1]!];
  const base = off[0]! * lstride[0]! + off[1]! * lstride[1]! + off[2]! * lstride[2]!;
  const strides = [0, 1, 2].map((c) => sign[c]! * lstride[perm[c]!]!) as [number, number, number];
  return { base, strides };
}

/** Copies source slice k of the label map into `out` (nx·ny values, x fastest). */
export function readSlice(labels: Volume, map: GridMap, nx: number, ny: number, k: number, out: Float64Array): void {
  const data = labels.data;
  const [si, sj, sk] = map.strides;
  const k0 = map.base + k * sk;
  for (let j = 0; j < ny; j++) {
    let idx = k0 + j * sj;
    const row = j * nx;
    for (let i = 0; i < nx; i++, idx += si) out[row + i] = data[idx] as number;
  }
}
