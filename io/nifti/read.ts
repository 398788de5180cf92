/**
 * NIfTI-1/2 reader (.nii and .nii.gz, either byte order): header validated by header.ts, voxel data
 * copied into a native typed array, stored values kept and scl_slope/scl_inter carried exactly, affine
 * chosen as nibabel's get_best_affine (sform, else qform, else the pixdim fallback).
 */
import { GatedError } from '../../core/errors.ts';
import { axisCodes, type Mat4 } from '../geometry.ts';
import { sniffFormat } from '../sniff.ts';
import type { ReadContext } from '../types.ts';
import { allocate, DTYPE_BYTES, type IoWarning, type Volume } from '../volume.ts';
import { DATATYPES, dataByteLength, parseNiftiHeader, type NiftiHeader } from './header.ts';
import { gunzipCapped, gunzipPrefix } from './gunzip.ts';
import { qformToAffine } from './qform.ts';

const HEADER_SLACK = 64 * 1024;

export function readNifti(bytes: Uint8Array, ctx: ReadContext, name: string): Volume {
  const { limits } = ctx;
  let raw = bytes;
  if (sniffFormat(bytes.subarray(0, 4)) === 'gzip') {
    const head = gunzipPrefix(bytes, 540 + 4);
    // The header alone tells how many bytes a genuine file inflates to; extensions add at most vox_offset.
    const probe = parseNiftiHeader(head, Number.MAX_SAFE_INTEGER, limits);
    const cap = Math.min(limits.maxInflatedBytes, probe.voxOffset + dataByteLength(probe) + HEADER_SLACK);
    raw = gunzipCapped(bytes, cap);
  }
  const h = parseNiftiHeader(raw, raw.length, limits);
  const volume = toVolume(h, raw, name);
  ctx.onProgress?.(1, 1, 'nifti');
  return volume;
}

/** Affine exactly as nibabel's get_best_affine chooses it. */
export function bestAffine(h: NiftiHeader): { affine: Mat4; source: 'sform' | 'qform' | 'pixdim' } {
  if (h.sformCode > 0) return { affine: [...h.srow.map((r) => [...r]), [0, 0, 0, 1]], source: 'sform' };
  if (h.qformCode > 0) {
    const qfac = h.pixdim[0]! < 0 ? -1 : 1;
    const zooms = [1, 2, 3].map((i) => (i <= h.dims.length ? Math.abs(h.pixdim[i]!) : 1) || 1) as [number, number, number];
    return { affine: qformToAffine({ quatern: h.quatern, qoffset: h.qoffset, zooms, qfac }), source: 'qform' };
  }
  // No orientation at all: nibabel centres the grid and flips x (Analyze convention).
  const z = [1, 2, 3].map((i) => (i <= h.dims.length ? h.pixdim[i]! : 1) || 1);
  const n = [0, 1, 2].map((i) => h.dims[i] ?? 1);
  const origin = n.map((d) => (d - 1) / 2);
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

// --- internal ---

function toVolume(h: NiftiHeader, raw: Uint8Array, name: string): Volume {
  const dt = DATATYPES[h.datatype]!;
  const warnings: IoWarning[] = [...h.warnings];
  const d = h.dims;
  const [nx = 1, ny = 1, nz = 1] = d;
  const extra = d.slice(3).reduce((a, b) => a * b, 1);
  if (d.length > 4) warnings.push({ code: 'dims_collapsed', message: `dimensions 4-${d.length} (${d.slice(3).join('x')}) are stacked along the 4th axis` });
  const n3 = nx * ny * nz;
  const nvox = n3 * extra;
  const isRgb = dt.components === 3;
  const data = allocate(dt.dtype, nvox * dt.components);
  const bpe = DTYPE_BYTES[dt.dtype];
  const src = raw.subarray(h.voxOffset, h.voxOffset + dataByteLength(h));
  if (isRgb) {
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
  const { affine, source } = bestAffine(h);
  if (source === 'pixdim') warnings.push({ code: 'no_orientation', message: 'neither sform nor qform is set; orientation is a guess (nibabel convention)' });
  const shape = isRgb ? (extra > 1 ? [nx, ny, nz, extra * 3] : [nx, ny, nz, 3]) : extra > 1 ? [nx, ny, nz, extra] : [nx, ny, nz];
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0]![c]!, affine[1]![c]!, affine[2]![c]!));
  if (shape.length > 3) spacing.push(isRgb && extra === 1 ? 1 : Math.abs(h.pixdim[4] ?? 1) || 1);
  const slope = h.sclSlope;
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
  // nibabel: a slope of 0 or a non-finite slope means "no scaling".
  if (Number.isFinite(slope) && slope !== 0) {
    const inter = Number.isFinite(h.sclInter) ? h.sclInter : 0;
    if (slope !== 1 || inter !== 0) volume.meta.rescale = { slope, intercept: inter };
  }
  if (nvox === 0) throw new GatedError('bad_dims', 'the volume has no voxels');
  return volume;
}

function swapBytes(b: Uint8Array, width: number): void {
  for (let i = 0; i + width <= b.length; i += width) {
    for (let j = 0; j < width / 2; j++) {
      const t = b[i + j]!;
      b[i + j] = b[i + width - 1 - j]!;
      b[i + width - 1 - j] = t;
    }
  }
}
