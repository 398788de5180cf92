/**
 * Where inference reads a volume's stored axial slices from: an array in memory (views of it, never a copy) or
 * an uncompressed NIfTI file (positional reads into one reused buffer), so that a large input need never be held
 * whole. Values are the stored ones, in the stored element type; any rescale is the normaliser's business.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { GatedError, toGatedError } from '../core/errors.ts';
import type { Limits } from '../core/limits.ts';
import type { DicomStreamPlan } from '../io/dicom/stream_plan.ts';
import { applyBitsStored } from '../io/dicom/pixels.ts';
import { axisCodes } from '../io/geometry.ts';
import { readRange } from '../io/load.ts';
import { DATATYPES, parseNiftiHeader } from '../io/nifti/header.ts';
import { bestAffine, rescaleOf } from '../io/nifti/read.ts';
import { sniffFormat } from '../io/sniff.ts';
import { allocate, DTYPE_BYTES, dtypeOf, viewAs, type DType, type Volume, type VoxelArray } from '../io/volume.ts';

export interface SliceSource {
  /** [nx, ny, nz] */
  readonly shape: readonly [number, number, number];
  readonly dtype: DType;
  /**
   * Stored values of slices [z0, z1), x fastest. The result is a view of the source's own memory or of a buffer it
   * reuses: valid until the next read, and never to be written. With `into` (of the source's type, long enough)
   * the values land there instead.
   */
  read(z0: number, z1: number, into?: VoxelArray): VoxelArray;
}

/** A source that holds a file open until closed. */
export interface FileSliceSource extends SliceSource {
  close(): void;
}

/** Bytes per read when a pass goes over every slice (statistics, background): a few MiB, one buffer. */
export const SLAB_BYTES = 4 * 2 ** 20;

export function isSliceSource(x: ArrayLike<number> | SliceSource): x is SliceSource {
  return typeof (x as SliceSource).read === 'function' && Array.isArray((x as SliceSource).shape);
}

/** An array's slices, as views (a plain array of numbers, which has none, is copied per read). */
export function arraySource(data: ArrayLike<number>, shape: readonly number[]): SliceSource {
  const [nx = 1, ny = 1] = shape;
  const plane = nx * ny;
  const nz = shape[2] ?? Math.floor(data.length / plane);
  const typed = VOXEL_ARRAYS.some((T) => data instanceof T);
  const dtype = typed ? dtypeOf(data as VoxelArray) : 'float64';
  return {
    shape: [nx, ny, nz],
    dtype,
    read(z0, z1, into) {
      checkRange(z0, z1, nz);
      const view = typed ? (data as VoxelArray).subarray(z0 * plane, z1 * plane) : Float64Array.from({ length: (z1 - z0) * plane }, (_, i) => data[z0 * plane + i]!);
      if (!into) return view;
      const out = into.subarray(0, view.length);
      out.set(view);
      return out;
    },
  };
}

/**
 * A 3D array's slices as seen with the axes of `flip` reversed (x and y within each slice read, z by index), each
 * read copied into one reused buffer: the flipped grid without a flipped copy of the array.
 */
export function flippedSource(data: VoxelArray, shape: readonly number[], flip: readonly [boolean, boolean, boolean]): SliceSource {
  if (!flip.some(Boolean)) return arraySource(data, shape);
  const [nx = 1, ny = 1, nz = 1] = shape;
  const plane = nx * ny;
  const dtype = dtypeOf(data);
  const slab = slabOutput(dtype, plane, nz);
  return {
    shape: [nx, ny, nz],
    dtype,
    read(z0, z1, into) {
      const out = slab(z0, z1, into);
      for (let z = z0; z < z1; z++) copyPlane(data, (flip[2] ? nz - 1 - z : z) * plane, out, (z - z0) * plane, nx, ny, flip[0], flip[1]);
      return out;
    },
  };
}

/** Source or array as a source (an array's shape is taken from `shape`). */
export function sourceOf(data: ArrayLike<number> | SliceSource, shape: readonly number[]): SliceSource {
  return isSliceSource(data) ? data : arraySource(data, shape);
}

/** Whole slices per read of about `bytes` (at least one). */
export function slicesPerRead(source: SliceSource, bytes = SLAB_BYTES): number {
  const [nx, ny] = source.shape;
  return Math.max(1, Math.floor(bytes / (nx * ny * DTYPE_BYTES[source.dtype])));
}

/** Calls `visit` with every slice of the source in order, a slab of about `bytes` at a time. */
export function forEachSlab(source: SliceSource, visit: (values: VoxelArray, z0: number) => void, bytes = SLAB_BYTES): void {
  const per = slicesPerRead(source, bytes);
  const nz = source.shape[2];
  for (let z = 0; z < nz; z += per) visit(source.read(z, Math.min(nz, z + per)), z);
}

/**
 * Slices read from a file's voxel bytes at `offset` (little-endian, or one byte per value), each read positional
 * into one buffer grown to the largest read asked for. A file that has become shorter fails the read as truncated.
 */
export function fileSource(path: string, offset: number, shape: readonly [number, number, number], dtype: DType): FileSliceSource {
  const fd = openSync(path, 'r');
  const [nx, ny, nz] = shape;
  const plane = nx * ny;
  const bpe = DTYPE_BYTES[dtype];
  const slab = slabOutput(dtype, plane, nz);
  let open = true;
  return {
    shape,
    dtype,
    read(z0, z1, into) {
      if (!open) throw new GatedError('internal', 'slices read from a closed file');
      const out = slab(z0, z1, into);
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.length * bpe);
      const at = offset + z0 * plane * bpe;
      for (let got = 0; got < bytes.length; ) {
        const r = readSync(fd, bytes, got, bytes.length - got, at + got);
        if (r === 0) throw new GatedError('truncated', `the file ended at byte ${at + got} while slices ${z0}-${z1 - 1} were read; it changed while being segmented`);
        got += r;
      }
      return out;
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/**
 * The slices of a DICOM series planned by planDicomStream, each read with one positional read of its file into
 * one reused buffer, its BitsStored and intercept applied as the loader applies them, presented flipped along
 * the axes of `flip` (x and y as read, z by index): the loader's volume with the flips applied, slice by slice.
 * A file whose size has changed since it was planned fails the read (typed), as does one that ends early.
 */
export function dicomSource(plan: Pick<DicomStreamPlan, 'header' | 'stored' | 'add' | 'slices'>, flip: readonly [boolean, boolean, boolean] = [false, false, false]): FileSliceSource {
  const { header, stored, add, slices } = plan;
  const [nx = 1, ny = 1, nz = 1] = header.shape;
  const dtype = header.dtype;
  const plane = nx * ny;
  const raw = new Uint8Array(plane * DTYPE_BYTES[stored]);
  // the plan came from another thread: its slices must be exactly what this buffer holds
  if (slices.length !== nz || slices.some((s) => s.bytes !== raw.length)) throw new GatedError('internal', `a series plan of ${slices.length} slices does not fit a volume of ${nz} slices of ${raw.length} bytes`);
  const values = viewAs(stored, raw);
  const slab = slabOutput(dtype, plane, nz);
  const plain = !flip[0] && !flip[1] && add === 0 && dtype === stored;
  return {
    shape: [nx, ny, nz],
    dtype,
    read(z0, z1, into) {
      const out = slab(z0, z1, into);
      for (let z = z0; z < z1; z++) {
        const s = slices[flip[2] ? nz - 1 - z : z]!;
        readSliceBytes(s, raw);
        applyBitsStored(values, s.bitsStored, s.bitsAllocated, s.pixelRepresentation);
        const base = (z - z0) * plane;
        if (plain) out.set(values, base);
        else copyPlane(values, 0, out, base, nx, ny, flip[0], flip[1], add);
      }
      return out;
    },
    close() {},
  };
}

/** A NIfTI file that can be read slice by slice: its header as a Volume (no voxels) and its slices. */
export interface NiftiSlices {
  /** Shape, spacing, affine, dtype and meta exactly as the reader gives them; `data` is empty. */
  header: Volume;
  source: FileSliceSource;
}

/** Headers longer than this (extensions) are read whole by the loader instead. */
const MAX_HEADER_BYTES = 1 << 20;

/**
 * Opens an uncompressed single-file NIfTI for slice-by-slice reading when its voxels are exactly the array the
 * reader would give: one scalar volume, little-endian (or one byte per value), a usable sform or qform, spatial
 * units in mm. The header (extensions included) goes through the reader's own validation, against the file's
 * size, so every voxel byte is known present before anything is read. Anything else, a damaged file included,
 * gives undefined: the loader then reads it whole and says what is wrong, as it always has.
 */
export function openNiftiSlices(path: string, limits: Limits, name: string): NiftiSlices | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  let h;
  try {
    const size = fstatSync(fd).size;
    if (size > limits.maxFileBytes) return undefined;
    let head = readPrefix(fd, Math.min(size, 64 * 1024));
    if (sniffFormat(head.subarray(0, 512)) !== 'nifti') return undefined;
    h = parseNiftiHeader(head, size, limits);
    // extensions are validated only when the bytes up to the voxels are all there
    if (h.voxOffset > head.length) {
      if (h.voxOffset > MAX_HEADER_BYTES) return undefined;
      head = readPrefix(fd, h.voxOffset);
      h = parseNiftiHeader(head, size, limits);
    }
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
  const dt = DATATYPES[h.datatype]!;
  const spaceUnit = h.xyztUnits & 0x07;
  if (dt.components !== 1 || h.dims.length > 4 || h.dims.slice(3).some((d) => d !== 1) || (!h.littleEndian && dt.bitpix > 8) || spaceUnit === 1 || spaceUnit === 3) return undefined;
  let rescale;
  let best;
  try {
    best = bestAffine(h);
    rescale = rescaleOf(h);
  } catch {
    return undefined;
  }
  const { affine, source: from } = best;
  if (from === 'pixdim' || !affine.every((row) => row.every(Number.isFinite))) return undefined;
  const [nx = 1, ny = 1, nz = 1] = h.dims;
  const header: Volume = {
    data: new Uint8Array(0),
    shape: [nx, ny, nz],
    spacing: [0, 1, 2].map((c) => Math.hypot(affine[0]![c]!, affine[1]![c]!, affine[2]![c]!)),
    affine,
    dtype: dt.dtype,
    meta: { format: 'nifti', components: 'scalar', orientation: axisCodes(affine), source: name, warnings: [...h.warnings], ...(h.descrip ? { seriesDescription: h.descrip } : {}) },
  };
  if (rescale) header.meta.rescale = rescale;
  return { header, source: fileSource(path, h.voxOffset, [nx, ny, nz], dt.dtype) };
}

// --- internal ---

const VOXEL_ARRAYS = [Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array];

function readPrefix(fd: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = readSync(fd, out, got, n - got, got);
    if (r === 0) break;
    got += r;
  }
  return out.subarray(0, got);
}

/** One slice's stored bytes into `dst`, from a file that must still be the size it was planned at. */
function readSliceBytes(s: DicomStreamPlan['slices'][number], dst: Uint8Array): void {
  let read: boolean;
  try {
    read = readRange(s.path, dst.subarray(0, s.bytes), s.offset, s.fileSize);
  } catch (e) {
    throw toGatedError(e, 'series_inconsistent', `a file of the series can no longer be opened`);
  }
  if (read) return;
  let size = 0;
  try {
    size = statSync(s.path).size;
  } catch {
    // gone: as short as can be
  }
  throw new GatedError(size < s.fileSize ? 'truncated' : 'series_inconsistent', `a file of the series is now ${size} bytes, not the ${s.fileSize} it had when its header was read; it changed while being segmented`);
}

/** One plane of `src` (from index `from`) into `out` (at `to`), x and/or y reversed, `add` added to every value. */
function copyPlane(src: VoxelArray, from: number, out: VoxelArray, to: number, nx: number, ny: number, flipX: boolean, flipY: boolean, add = 0): void {
  for (let y = 0; y < ny; y++) {
    const row = from + (flipY ? ny - 1 - y : y) * nx;
    const o = to + y * nx;
    if (flipX) for (let x = 0, r = row + nx - 1; x < nx; x++, r--) out[o + x] = src[r]! + add;
    else if (add === 0) out.set(src.subarray(row, row + nx) as never, o);
    else for (let x = 0; x < nx; x++) out[o + x] = src[row + x]! + add;
  }
}

/**
 * Where a read of slices [z0, z1) goes, after checking the range: `into` when it fits, else a buffer of the
 * source's own, grown to the largest read asked for.
 */
function slabOutput(dtype: DType, plane: number, nz: number): (z0: number, z1: number, into?: VoxelArray) => VoxelArray {
  let buf: VoxelArray = allocate(dtype, 0);
  return (z0, z1, into) => {
    checkRange(z0, z1, nz);
    const n = (z1 - z0) * plane;
    if (into && into.length >= n && dtypeOf(into) === dtype) return into.subarray(0, n);
    if (buf.length < n) buf = allocate(dtype, n);
    return buf.subarray(0, n);
  };
}

function checkRange(z0: number, z1: number, nz: number): void {
  if (!(Number.isInteger(z0) && Number.isInteger(z1) && z0 >= 0 && z0 <= z1 && z1 <= nz)) throw new GatedError('internal', `slices [${z0}, ${z1}) asked of a volume of ${nz}`);
}
