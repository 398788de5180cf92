/**
 * 2.5D slice stacks from a volume on its canonical grid: slice z with `context` neighbours on each side as
 * channels (clamped at the ends), laid out [H = ny, W = nx, C] and padded at the bottom/right to a multiple
 * of the model's size multiple. With a normaliser, stored values are normalised as they are copied. Training and inference build their inputs here, so they cannot disagree.
 */
import { normalized, type Normalizer } from './preprocess.ts';
import { forEachSlab, isSliceSource, type SliceSource } from './slice_source.ts';

export interface SliceGeometry {
  nx: number;
  ny: number;
  nz: number;
  /** Padded height and width. */
  H: number;
  W: number;
}

export function sliceGeometry(shape: readonly number[], multipleOf: number): SliceGeometry {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const up = (n: number) => Math.ceil(n / multipleOf) * multipleOf;
  return { nx, ny, nz, H: up(Math.max(ny, multipleOf)), W: up(Math.max(nx, multipleOf)) };
}

/**
 * Writes the stack for slice z into out[offset ...] as [H, W, 2·context+1]; padding takes `fill`
 * (the normalised background level, so padding looks like air rather than tissue). `data` is the volume's
 * stored values or a source they are read from (only the stack's own slices are read).
 */
export function writeSliceStack(data: ArrayLike<number> | SliceSource, g: SliceGeometry, z: number, context: number, fill: number, out: Float32Array, offset = 0, norm?: Normalizer): void {
  const C = 2 * context + 1;
  const { nx, ny, nz, H, W } = g;
  const plane = nx * ny;
  const z0 = Math.min(nz - 1, Math.max(0, z - context));
  const z1 = Math.min(nz - 1, Math.max(0, z + context));
  // a source gives the slab of the stack's slices; an array is indexed where it is
  const [values, base] = isSliceSource(data) ? [data.read(z0, z1 + 1), z0] : [data, 0];
  for (let c = 0; c < C; c++) {
    const zz = Math.min(nz - 1, Math.max(0, z + c - context));
    const src = (zz - base) * plane;
    for (let y = 0; y < H; y++) {
      const row = offset + y * W * C + c;
      if (y >= ny) {
        for (let x = 0; x < W; x++) out[row + x * C] = fill;
        continue;
      }
      const s = src + y * nx;
      if (norm) for (let x = 0; x < nx; x++) out[row + x * C] = normalized(values[s + x]!, norm);
      else for (let x = 0; x < nx; x++) out[row + x * C] = values[s + x]!;
      for (let x = nx; x < W; x++) out[row + x * C] = fill;
    }
  }
}

/**
 * The lowest (normalised) value of the data: what background turns into after normalisation. A source is
 * read slab by slab when the normaliser has not already seen the lowest stored value.
 */
export function backgroundLevel(data: ArrayLike<number> | SliceSource, norm?: Normalizer): number {
  const empty = isSliceSource(data) ? data.shape.some((n) => n === 0) : data.length === 0;
  if (norm?.storedMin !== undefined && !empty) return normalized(norm.storedMin, norm);
  let lo = Infinity;
  const visit = (values: ArrayLike<number>) => {
    for (let i = 0; i < values.length; i++) if (values[i]! < lo) lo = values[i]!;
  };
  if (isSliceSource(data)) forEachSlab(data, visit);
  else visit(data);
  if (!Number.isFinite(lo)) return 0;
  return norm ? normalized(lo, norm) : lo;
}

/** In-plane size of a slice resampled from `spacing` to `target` (x, y in mm). */
export function resampledSize(nx: number, ny: number, spacing: readonly number[], target: readonly number[] | undefined): [number, number] {
  if (!target) return [nx, ny];
  return [Math.max(1, Math.round((nx * spacing[0]!) / target[0]!)), Math.max(1, Math.round((ny * spacing[1]!) / target[1]!))];
}

/**
 * Resamples every axial slice of a volume [nx, ny, nz] to [ox, oy, nz] with voxel centres aligned at the
 * grid corners' half-pixel positions (the same convention as the network-side resize): linear for
 * intensities, nearest for labels.
 */
export function resampleInPlane<T extends Float32Array | Uint8Array>(data: T, shape: readonly number[], ox: number, oy: number, mode: 'linear' | 'nearest'): T {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const out = (data instanceof Uint8Array ? new Uint8Array(ox * oy * nz) : new Float32Array(ox * oy * nz)) as T;
  const src = (o: number, n: number, on: number) => ((o + 0.5) * n) / on - 0.5;
  for (let z = 0; z < nz; z++) {
    const base = z * nx * ny;
    for (let y = 0; y < oy; y++) {
      const sy = src(y, ny, oy);
      for (let x = 0; x < ox; x++) {
        const sx = src(x, nx, ox);
        const o = z * ox * oy + y * ox + x;
        if (mode === 'nearest') {
          const xi = Math.min(nx - 1, Math.max(0, Math.round(sx)));
          const yi = Math.min(ny - 1, Math.max(0, Math.round(sy)));
          out[o] = data[base + yi * nx + xi]!;
          continue;
        }
        const x0 = Math.min(nx - 1, Math.max(0, Math.floor(sx)));
        const y0 = Math.min(ny - 1, Math.max(0, Math.floor(sy)));
        const x1 = Math.min(nx - 1, x0 + 1);
        const y1 = Math.min(ny - 1, y0 + 1);
        const fx = Math.min(1, Math.max(0, sx - x0));
        const fy = Math.min(1, Math.max(0, sy - y0));
        const a = data[base + y0 * nx + x0]!;
        const b = data[base + y0 * nx + x1]!;
        const c = data[base + y1 * nx + x0]!;
        const d = data[base + y1 * nx + x1]!;
        out[o] = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d);
      }
    }
  }
  return out;
}
