/**
 * NIfTI-1/2 header parsing and validation of our own, forward-only: every offset and size is checked
 * against the buffer and the limits before anything is allocated, and extensions are walked strictly
 * forward (a cursor that could move backwards is how a 512-byte file loops forever elsewhere).
 */
import { GatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import type { DType } from '../volume.ts';

export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  headerSize: 348 | 540;
  /** dim[1..dim[0]] */
  dims: number[];
  datatype: number;
  bitpix: number;
  /** pixdim[0..7]; pixdim[0] is qfac. */
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  xyztUnits: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  srow: [number[], number[], number[]];
  descrip: string;
  intentCode: number;
  extensions: { code: number; offset: number; size: number }[];
  warnings: { code: string; message: string }[];
}

/** NIfTI datatype codes we read, with their element type and components. */
export const DATATYPES: Record<number, { dtype: DType; bitpix: number; components: 1 | 3; name: string }> = {
  2: { dtype: 'uint8', bitpix: 8, components: 1, name: 'uint8' },
  4: { dtype: 'int16', bitpix: 16, components: 1, name: 'int16' },
  8: { dtype: 'int32', bitpix: 32, components: 1, name: 'int32' },
  16: { dtype: 'float32', bitpix: 32, components: 1, name: 'float32' },
  64: { dtype: 'float64', bitpix: 64, components: 1, name: 'float64' },
  128: { dtype: 'uint8', bitpix: 24, components: 3, name: 'RGB24' },
  256: { dtype: 'int8', bitpix: 8, components: 1, name: 'int8' },
  512: { dtype: 'uint16', bitpix: 16, components: 1, name: 'uint16' },
  768: { dtype: 'uint32', bitpix: 32, components: 1, name: 'uint32' },
};

const KNOWN_UNSUPPORTED: Record<number, string> = {
  1: 'binary', 32: 'complex64', 1024: 'int64', 1280: 'uint64', 1536: 'float128', 1792: 'complex128', 2048: 'complex256', 2304: 'RGBA32',
};

/** Parses and validates a header from the first bytes of an (uncompressed) NIfTI file. */
export function parseNiftiHeader(b: Uint8Array, fileSize: number, limits: Limits): NiftiHeader {
  if (b.length < 4) throw new GatedError('not_nifti', 'file is shorter than a NIfTI header');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let version: 1 | 2;
  let le: boolean;
  const s0le = dv.getInt32(0, true);
  const s0be = dv.getInt32(0, false);
  if (s0le === 348 || s0be === 348) [version, le] = [1, s0le === 348];
  else if (s0le === 540 || s0be === 540) [version, le] = [2, s0le === 540];
  else throw new GatedError('not_nifti', `sizeof_hdr is ${s0le}; a NIfTI header has 348 or 540`);
  const headerSize = version === 1 ? 348 : 540;
  if (b.length < headerSize) throw new GatedError('truncated', `the header needs ${headerSize} bytes; the file has ${b.length}`);
  const magic = version === 1 ? ascii(b, 344, 4) : ascii(b, 4, 4);
  if (magic === `ni${version}\0`) {
    throw new GatedError('not_nifti', 'this is the header of a .hdr/.img pair, which is not supported; pass a single-file .nii or .nii.gz');
  }
  // The magic must agree with sizeof_hdr: a 540-byte header calling itself n+1 is not a file we can trust.
  if (magic !== `n+${version}\0`) throw new GatedError('not_nifti', `magic is '${printable(magic)}'; a ${headerSize}-byte header needs 'n+${version}'`);

  const i16 = (o: number) => dv.getInt16(o, le);
  const i32 = (o: number) => dv.getInt32(o, le);
  const f32 = (o: number) => dv.getFloat32(o, le);
  const f64 = (o: number) => dv.getFloat64(o, le);
  const i64 = (o: number) => {
    const v = dv.getBigInt64(o, le);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) return Number.NaN;
    return Number(v);
  };

  const dimRaw: number[] = [];
  const pixdim: number[] = [];
  for (let i = 0; i < 8; i++) {
    dimRaw.push(version === 1 ? i16(40 + 2 * i) : i64(16 + 8 * i));
    pixdim.push(version === 1 ? f32(76 + 4 * i) : f64(104 + 8 * i));
  }
  const h: NiftiHeader = {
    version,
    littleEndian: le,
    headerSize,
    dims: [],
    datatype: version === 1 ? i16(70) : i16(12),
    bitpix: version === 1 ? i16(72) : i16(14),
    pixdim,
    voxOffset: version === 1 ? f32(108) : i64(168),
    sclSlope: version === 1 ? f32(112) : f64(176),
    sclInter: version === 1 ? f32(116) : f64(184),
    xyztUnits: version === 1 ? b[123]! : i32(500),
    qformCode: version === 1 ? i16(252) : i32(344),
    sformCode: version === 1 ? i16(254) : i32(348),
    quatern: version === 1 ? [f32(256), f32(260), f32(264)] : [f64(352), f64(360), f64(368)],
    qoffset: version === 1 ? [f32(268), f32(272), f32(276)] : [f64(376), f64(384), f64(392)],
    srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => (version === 1 ? f32(280 + 16 * r + 4 * c) : f64(400 + 32 * r + 8 * c)))) as [number[], number[], number[]],
    descrip: ascii(b, version === 1 ? 148 : 240, 80).replace(/\0.*$/s, ''),
    intentCode: version === 1 ? i16(68) : i32(504),
    extensions: [],
    warnings: [],
  };

  const ndim = dimRaw[0]!;
  if (!Number.isInteger(ndim) || ndim < 1 || ndim > 7) throw new GatedError('bad_dims', `dim[0] is ${ndim}; it must be 1 to 7`);
  for (let i = 1; i <= ndim; i++) {
    const d = dimRaw[i]!;
    if (!Number.isInteger(d) || d < 1) throw new GatedError('bad_dims', `dim[${i}] is ${d}; every used dimension must be at least 1`);
    h.dims.push(d);
  }

  const dt = DATATYPES[h.datatype];
  if (!dt) {
    const name = KNOWN_UNSUPPORTED[h.datatype];
    throw new GatedError('unsupported_datatype', name ? `datatype ${name} (${h.datatype}) is not supported` : `unknown datatype code ${h.datatype}`);
  }
  if (h.bitpix !== dt.bitpix) throw new GatedError('bad_dims', `bitpix is ${h.bitpix} but datatype ${dt.name} has ${dt.bitpix} bits`);

  const nvox = h.dims.reduce((a, d) => a * d, 1);
  const dataBytes = (nvox * dt.bitpix) / 8;
  if (!Number.isSafeInteger(nvox) || dataBytes > limits.maxVoxelBytes) {
    throw new GatedError('too_large', `the volume would need ${dataBytes} bytes; the limit is ${limits.maxVoxelBytes}`, { details: { dims: h.dims } });
  }

  // NIfTI-1 stores vox_offset as a float; a non-integral value cannot address bytes, and in a single file the
  // 4 bytes after the header belong to the extension flag, so data starts at headerSize + 4 at the earliest.
  const minOffset = headerSize + 4;
  if (!Number.isFinite(h.voxOffset) || h.voxOffset < minOffset || !Number.isInteger(h.voxOffset)) {
    throw new GatedError('bad_vox_offset', `vox_offset is ${h.voxOffset}; it must be an integer ≥ ${minOffset}`);
  }
  if (h.voxOffset > fileSize) throw new GatedError('bad_vox_offset', `vox_offset ${h.voxOffset} lies beyond the end of the file (${fileSize} bytes)`);
  if (h.voxOffset + dataBytes > fileSize) {
    throw new GatedError('truncated', `the voxel data needs ${dataBytes} bytes from offset ${h.voxOffset}; the file has ${fileSize} bytes`);
  }

  readExtensions(h, b, dv, le);
  return h;
}

/** Bytes of voxel data the header declares. */
export function dataByteLength(h: NiftiHeader): number {
  return (h.dims.reduce((a, d) => a * d, 1) * h.bitpix) / 8;
}

// --- internal ---

function readExtensions(h: NiftiHeader, b: Uint8Array, dv: DataView, le: boolean): void {
  const flagAt = h.headerSize;
  // A prefix (the first bytes of a gzip stream) is walked again once the whole file is inflated.
  if (b.length < h.voxOffset || b[flagAt] === 0) return;
  let pos = flagAt + 4;
  // Fewer than 16 bytes left before the data is padding, not an extension (nibabel stops there too).
  while (h.voxOffset - pos >= 16) {
    const esize = dv.getInt32(pos, le);
    const ecode = dv.getInt32(pos + 4, le);
    // esize ≥ 16 keeps the cursor strictly moving forward; anything smaller is malformed (or hostile).
    if (esize < 16) throw new GatedError('bad_extension', `extension at ${pos} has size ${esize}; the minimum is 16`);
    if (pos + esize > h.voxOffset) throw new GatedError('bad_extension', `extension at ${pos} (size ${esize}) runs past vox_offset ${h.voxOffset}`);
    if (esize % 16 !== 0) h.warnings.push({ code: 'extension_size', message: `extension at ${pos} has size ${esize}, not a multiple of 16` });
    h.extensions.push({ code: ecode, offset: pos + 8, size: esize - 8 });
    pos += esize;
    if (h.extensions.length > 10_000) throw new GatedError('bad_extension', 'more than 10000 header extensions');
  }
}

function ascii(b: Uint8Array, at: number, n: number): string {
  let s = '';
  for (let i = 0; i < n && at + i < b.length; i++) s += String.fromCharCode(b[at + i]!);
  return s;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}
