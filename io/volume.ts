/**
 * The one in-memory image type. Voxel (i, j, k[, t]) lives at data[i + nx*(j + ny*(k + nz*t))] (x fastest,
 * as NIfTI stores it); `affine` maps (i, j, k, 1) to millimetres in NIfTI's RAS+ world. A 2D image is a
 * volume with nz = 1. Colour images keep their components as the 4th axis (planar), flagged by
 * `meta.components === 'rgb'`.
 */
import type { Mat4 } from './geometry.ts';

export type DType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';

export type VoxelArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

export interface IoWarning {
  /** Stable machine-readable code, e.g. `gantry_tilt`, `uneven_spacing`, `missing_slices`. */
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/** A linear map from stored values to real-world values (DICOM modality LUT, NIfTI scl_*). */
export interface Rescale {
  slope: number;
  intercept: number;
}

export interface VolumeMeta {
  format: 'dicom' | 'nifti' | 'image';
  /** 'scalar' unless the 4th axis holds colour components. */
  components: 'scalar' | 'rgb';
  /**
   * When set, real values are `data * slope + intercept` and have NOT been applied to `data`
   * (carried exactly instead of rounding into the stored type). Absent when data already holds real values.
   */
  rescale?: Rescale;
  modality?: string;
  window?: { center: number; width: number };
  /** Three-letter axis code of the affine (nibabel's aff2axcodes), e.g. 'LPS' or 'RAS'. */
  orientation?: string;
  studyInstanceUID?: string;
  seriesInstanceUID?: string;
  frameOfReferenceUID?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  sopClassUID?: string;
  /** SOPInstanceUID of each source slice (k order) or of the single multi-frame object. */
  sopInstanceUIDs?: string[];
  photometric?: string;
  transferSyntaxUID?: string;
  /** Patient/study attributes of a DICOM source, for derived objects only (never logged, never in names). */
  patient?: Record<string, string>;
  /** Free-form provenance (file name of the source, reader). Never holds patient identifiers. */
  source?: string;
  warnings: IoWarning[];
}

export interface Volume {
  data: VoxelArray;
  /** [nx, ny, nz] or [nx, ny, nz, nt|nc]. */
  shape: number[];
  /** Voxel size per axis in mm (4th: seconds or 1). Equal to the column norms of `affine` for axes 0-2. */
  spacing: number[];
  affine: Mat4;
  dtype: DType;
  meta: VolumeMeta;
}

export const DTYPE_BYTES: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
};

export function dtypeOf(data: VoxelArray): DType {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Float32Array) return 'float32';
  return 'float64';
}

/** The typed array of each stored type. */
const ARRAY_OF: { [D in DType]: { new (length: number): VoxelArray; new (buffer: ArrayBufferLike, byteOffset: number, length: number): VoxelArray } } = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

export function allocate(dtype: DType, length: number): VoxelArray {
  return new ARRAY_OF[dtype](length);
}

export function voxelCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Real-world values as float64 (rescale applied). Float64 keeps DICOM/NIfTI rescale exact for any
 * stored integer up to 2^32, which float32 does not.
 */
export function realValues(volume: Volume): Float64Array {
  const out = new Float64Array(volume.data.length);
  const r = volume.meta.rescale;
  const slope = r?.slope ?? 1;
  const inter = r?.intercept ?? 0;
  const src = volume.data;
  for (let i = 0; i < src.length; i++) out[i] = (src[i] as number) * slope + inter;
  return out;
}

/** The values held in a byte buffer (aligned to the type's size), without a copy. */
export function viewAs(dtype: DType, b: Uint8Array): VoxelArray {
  return dtype === 'uint8' ? b : new ARRAY_OF[dtype](b.buffer, b.byteOffset, b.byteLength / DTYPE_BYTES[dtype]);
}
