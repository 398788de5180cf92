/**
 * NIfTI-1/2 reader (.nii and .nii.gz, either byte order): header validated by header.ts, voxel data
 * as a native typed array (a view of the inflated or given bytes when they are aligned little-endian
 * scalars, so the Volume may share memory with `bytes`; a copy otherwise), stored values kept and scl_slope/scl_inter carried exactly, affine
 * chosen as nibabel's get_best_affine (sform, else qform, else the pixdim fallback). Spacing is the affine's
 * column norms (the Volume invariant) and, for a 4th axis, pixdim[4] in seconds. nifti-reader-js is not used.
 */
import { GatedError } from '../../core/errors.ts';
import { swapBytes } from '../bytes.ts';
import { axisCodes, type Mat4 } from '../geometry.ts';
import { sniffFormat } from '../sniff.ts';
import type { ReadContext } from '../types.ts';
import { allocate, DTYPE_BYTES, viewAs, type DType, type IoWarning, type Rescale, type Volume, type VoxelArray } from '../volume.ts';
import { DATATYPES, dataByteLength, parseNiftiHeader, type NiftiHeader } from './header.ts';
import { gunzipCapped, gunzipPrefix } from './gunzip.ts';
import { qformToAffine } from './qform.ts';

const HEADER_SLACK = 64 * 1024;
/** The largest header plus the extension flag: enough to validate either version. */
const PREFIX = 540 + 4;

export function readNifti(bytes: Uint8Array, ctx: ReadContext, name: string): Volume {
  const { limits } = ctx;
  if (bytes.length > limits.maxFileBytes) throw new GatedError('too_large', `input is ${bytes.length} bytes; the limit is ${limits.maxFileBytes}`);
  let raw = bytes;
  if (sniffFormat(bytes.subarray(0, 4)) === 'gzip') {
    const head = gunzipPrefix(bytes, PREFIX);
    if (head.length < PREFIX) {
      // Less than a header came out: a tiny file, or a stream cut short, which only a full inflate can tell.
      raw = gunzipCapped(bytes, Math.min(limits.maxInflatedBytes, HEADER_SLACK));
    } else {
      // The header alone tells how many bytes a genuine file inflates to; extensions add at most vox_offset.
      const probe = parseNiftiHeader(head, Number.MAX_SAFE_INTEGER, limits);
      const cap = Math.min(limits.maxInflatedBytes, probe.voxOffset + dataByteLength(probe) + HEADER_SLACK);
      raw = gunzipCapped(bytes, cap);
    }
  }
  const h = parseNiftiHeader(raw, raw.length, limits);
  const volume = toVolume(h, raw, name);
  ctx.onProgress?.(1, 1, 'nifti');
  return volume;
}

/**
 * Affine exactly as nibabel's get_best_affine chooses it, after nibabel's header fixes: an xform code
 * outside the defined set counts as 0, pixdim[1..3] are taken as |pixdim| with 0 read as 1, and qfac is
 * -1 only when pixdim[0] is exactly -1.
 */
export function bestAffine(h: NiftiHeader): { affine: Mat4; source: 'sform' | 'qform' | 'pixdim' } {
  if (isXformCode(h.sformCode)) return { affine: [...h.srow.map((r) => [...r]), [0, 0, 0, 1]], source: 'sform' };
  // NaN stays NaN here and is refused by the caller's finiteness check.
  const zoom = (i: number) => (h.pixdim[i] === 0 ? 1 : Math.abs(h.pixdim[i]!));
  if (isXformCode(h.qformCode)) {
    const qfac = h.pixdim[0] === -1 ? -1 : 1;
    // The stored quaternion is float32 (NIfTI-1) or float64 (NIfTI-2); allow a few eps of rounding.
    const tolerance = 3 * (h.version === 1 ? 2 ** -23 : Number.EPSILON);
    return { affine: qformToAffine({ quatern: h.quatern, qoffset: h.qoffset, zooms: [zoom(1), zoom(2), zoom(3)], qfac }, tolerance), source: 'qform' };
  }
  // No orientation at all: centre the grid and flip x (the Analyze convention nibabel keeps).
  const z = [1, 2, 3].map((i) => (i <= h.dims.length ? zoom(i) : 1));
  const origin = [0, 1, 2].map((i) => ((h.dims[i] ?? 1) - 1) / 2);
  return {
    affine: [
      [-z[0]!, 0, 0, origin[0]! * z[0]!],
      [0, z[1]!, 0, -origin[1]! * z[1]!],
      [0, 0, z[2]!, -origin[2]! * z[2]!],
      [0, 0, 0, 1],
    ],
    source: 'pixdim',
  };
}

/**
 * scl_slope/scl_inter as nibabel reads them: a slope of 0 or a non-finite slope means "no scaling";
 * a valid slope with a non-finite intercept has no meaning and is refused.
 */
export function rescaleOf(h: NiftiHeader): Rescale | undefined {
  const slope = h.sclSlope;
  if (!Number.isFinite(slope) || slope === 0) return undefined;
  if (!Number.isFinite(h.sclInter)) throw new GatedError('corrupt_image', `scl_slope is ${slope} but scl_inter is ${h.sclInter}`);
  if (slope === 1 && h.sclInter === 0) return undefined;
  return { slope, intercept: h.sclInter };
}

// --- internal ---

function toVolume(h: NiftiHeader, raw: Uint8Array, name: string): Volume {
  const dt = DATATYPES[h.datatype]!;
  // Everything that can refuse the header runs before the voxel buffer is allocated.
  const { affine, source } = bestAffine(h);
  if (!affine.every((row) => row.every(Number.isFinite))) throw new GatedError('bad_geometry', `the ${source} holds a non-finite value`);
  const rescale = rescaleOf(h);
  const warnings: IoWarning[] = [...h.warnings];
  const d = h.dims;
  const [nx = 1, ny = 1, nz = 1] = d;
  const extra = d.slice(3).reduce((a, b) => a * b, 1);
  if (d.length > 4) warnings.push({ code: 'dims_collapsed', message: `dimensions 4-${d.length} (${d.slice(3).join('x')}) are stacked along the 4th axis` });
  const n3 = nx * ny * nz;
  const nvox = n3 * extra;
  const isRgb = dt.components === 3;
  const bpe = DTYPE_BYTES[dt.dtype];
  const src = raw.subarray(h.voxOffset, h.voxOffset + dataByteLength(h));
  // Stored order is the Volume's order: aligned little-endian voxels are used where they lie, with no
  // second copy of the volume (nothing here writes to them).
  const inPlace = !isRgb && (h.littleEndian || bpe === 1) && src.byteOffset % bpe === 0 && src.length === nvox * bpe;
  const data = inPlace ? viewAs(dt.dtype, src) : allocate(dt.dtype, nvox * dt.components);
  if (inPlace) {
    // already in place
  } else if (isRgb) {
    // RGB24 is interleaved per voxel; the Volume keeps components planar on the 4th axis.
    const out = data as Uint8Array;
    for (let t = 0; t < extra; t++) {
      const base = t * n3;
      for (let v = 0; v < n3; v++) {
        const s = 3 * (base + v);
        out[(t * 3 + 0) * n3 + v] = src[s]!;
        out[(t * 3 + 1) * n3 + v] = src[s + 1]!;
        out[(t * 3 + 2) * n3 + v] = src[s + 2]!;
      }
    }
  } else {
    const dst = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    dst.set(src);
    if (!h.littleEndian && bpe > 1) swapBytes(dst, bpe);
  }
  if (source === 'pixdim') warnings.push({ code: 'no_orientation', message: 'neither sform nor qform is set; orientation is a guess (nibabel convention)' });
  const shape = isRgb ? (extra > 1 ? [nx, ny, nz, extra * 3] : [nx, ny, nz, 3]) : extra > 1 ? [nx, ny, nz, extra] : [nx, ny, nz];
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0]![c]!, affine[1]![c]!, affine[2]![c]!));
  if (shape.length > 3) spacing.push(isRgb && extra === 1 ? 1 : (Math.abs(h.pixdim[4] ?? 1) || 1) * timeUnitSeconds(h.xyztUnits));
  const spaceUnit = h.xyztUnits & 0x07;
  if (spaceUnit === 1 || spaceUnit === 3) {
    // Kept as stored, as nibabel does; the caller should know the numbers are not millimetres.
    warnings.push({ code: 'spatial_units', message: `xyzt_units says ${spaceUnit === 1 ? 'metres' : 'micrometres'}; the affine is kept as stored` });
  }
  const volume: Volume = {
    data,
    shape,
    spacing,
    affine,
    dtype: dt.dtype,
    meta: {
      format: 'nifti',
      components: isRgb ? 'rgb' : 'scalar',
      orientation: axisCodes(affine),
      source: name,
      warnings,
      ...(h.descrip ? { seriesDescription: h.descrip } : {}),
    },
  };
  if (rescale) volume.meta.rescale = rescale;
  return volume;
}

/** NIfTI defines xform codes 1..5 (scanner, aligned, Talairach, MNI, other template); nibabel resets any other to 0. */
function isXformCode(code: number): boolean {
  return Number.isInteger(code) && code >= 1 && code <= 5;
}

/** Seconds per pixdim[4] unit (xyzt_units bits 3-5: 8 s, 16 ms, 24 µs); unknown or non-time units count as 1. */
function timeUnitSeconds(xyztUnits: number): number {
  const t = xyztUnits & 0x38;
  return t === 16 ? 1e-3 : t === 24 ? 1e-6 : 1;
}
