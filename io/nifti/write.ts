/**
 * NIfTI-1 writer (NIfTI-2 when a dimension exceeds NIfTI-1's int16): sform (exact affine) and qform
 * (nearest rigid fit; exact unless sheared), vox_offset 352, stored values with scl_slope/scl_inter from
 * meta.rescale. Deterministic: the same volume always gives the same bytes, and reading a written file
 * and writing it again reproduces it byte for byte.
 */
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { writeAll, writeAtomicWith } from '../../core/atomic.ts';
import { GatedError } from '../../core/errors.ts';
import { dtypeOf, type Volume } from '../volume.ts';
import { affineToQform } from './qform.ts';

const CODES: Record<string, number> = { uint8: 2, int16: 4, int32: 8, float32: 16, float64: 64, int8: 256, uint16: 512, uint32: 768 };
const BITS: Record<string, number> = { uint8: 8, int16: 16, int32: 32, float32: 32, float64: 64, int8: 8, uint16: 16, uint32: 32 };
const NIFTI_UNITS_MM_SEC = 2 | 8;

export interface WriteNiftiOptions {
  gzip?: boolean;
  description?: string;
}

export function writeNifti(volume: Volume, opts: WriteNiftiOptions = {}): Uint8Array {
  const parts = niftiParts(volume, opts);
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * The file as [header, voxels] without copying scalar voxel data (a view on volume.data), for writers that
 * can write several buffers; gzipped output is one buffer.
 */
export function niftiParts(volume: Volume, opts: WriteNiftiOptions = {}): Uint8Array[] {
  if (dtypeOf(volume.data) !== volume.dtype) throw new GatedError('shape', `dtype is ${volume.dtype} but the data array holds ${dtypeOf(volume.data)}`);
  const { header: out, values, rgb, extra, n3 } = niftiHead(volume, opts);
  if (volume.data.length !== values) throw new GatedError('shape', `data has ${volume.data.length} values; shape ${volume.shape.join('x')} needs ${values}`);
  let body: Uint8Array;
  if (rgb) {
    body = new Uint8Array(values);
    const src = volume.data as Uint8Array;
    for (let t = 0; t < extra; t++) {
      for (let v = 0; v < n3; v++) {
        const d = 3 * (t * n3 + v);
        body[d] = src[(t * 3 + 0) * n3 + v]!;
        body[d + 1] = src[(t * 3 + 1) * n3 + v]!;
        body[d + 2] = src[(t * 3 + 2) * n3 + v]!;
      }
    }
  } else {
    body = new Uint8Array(volume.data.buffer, volume.data.byteOffset, volume.data.byteLength);
  }
  if (!opts.gzip) return [out, body];
  // level 6 and no timestamp/name in the gzip header keep the output deterministic
  const gz = gzipSync(Buffer.concat([out, body]), { level: 6 });
  return [new Uint8Array(gz.buffer, gz.byteOffset, gz.byteLength)];
}

/**
 * The header of an uncompressed scalar file whose voxels are written elsewhere (a series streamed slice by
 * slice): they follow it, from byte header.length on, as they lie in memory. `values` is how many there are.
 */
export function niftiHeader(volume: Omit<Volume, 'data'>, opts: WriteNiftiOptions = {}): { header: Uint8Array; values: number } {
  const h = niftiHead(volume, opts);
  if (h.rgb) throw new GatedError('internal', 'an RGB volume is written from its data (niftiParts)');
  return { header: h.header, values: h.values };
}

function niftiHead(volume: Omit<Volume, 'data'>, opts: WriteNiftiOptions): { header: Uint8Array; values: number; rgb: boolean; extra: number; n3: number } {
  // Voxel bytes are copied as they lie in memory, which is little-endian on every host Node supports today.
  if (isBigEndianHost()) throw new GatedError('internal', 'the NIfTI writer needs a little-endian host');
  if (volume.shape.length > 4 || volume.shape.length < 2) throw new GatedError('shape', `shape ${volume.shape.join('x')} has ${volume.shape.length} axes; NIfTI output takes 2 to 4`);
  if (volume.affine.length !== 4 || !volume.affine.every((row) => row.length === 4 && row.every(Number.isFinite))) {
    throw new GatedError('bad_geometry', 'the affine must be a finite 4x4 matrix');
  }
  const rgb = volume.meta.components === 'rgb';
  const shape = volume.shape;
  const [nx = 1, ny = 1, nz = 1] = shape;
  let extra = shape[3] ?? 1;
  if (rgb) {
    if (volume.dtype !== 'uint8' || extra % 3 !== 0) throw new GatedError('config', 'RGB volumes must be uint8 with 3 components per frame');
    extra /= 3;
  }
  const dims = extra > 1 ? [nx, ny, nz, extra] : [nx, ny, nz];
  const n3 = nx * ny * nz;
  const v2 = dims.some((d) => d > 32767);
  const hdrSize = v2 ? 540 : 348;
  const voxOffset = v2 ? 544 : 352;
  const datatype = rgb ? 128 : CODES[volume.dtype]!;
  const bitpix = rgb ? 24 : BITS[volume.dtype]!;
  const out = new Uint8Array(voxOffset);
  const dv = new DataView(out.buffer);
  // Derive the qform from the float32 sform as stored, so that reading a written file and writing it
  // again reproduces the same bytes.
  const A = volume.affine.map((row) => row.map((x) => (v2 ? x : Math.fround(x))));
  const q = affineToQform(A);
  const pixdim = [q.qfac, q.zooms[0], q.zooms[1], q.zooms[2], extra > 1 ? (volume.spacing[3] ?? 1) : 1, 1, 1, 1];
  const slope = volume.meta.rescale?.slope ?? 1;
  const inter = volume.meta.rescale?.intercept ?? 0;
  const descrip = (opts.description ?? 'gatedvision').slice(0, 79);
  const dimAll = [dims.length, ...dims, 1, 1, 1, 1, 1, 1, 1].slice(0, 8);

  if (!v2) {
    dv.setInt32(0, 348, true);
    out[39] = 0; // dim_info
    dimAll.forEach((d, i) => dv.setInt16(40 + 2 * i, d, true));
    dv.setInt16(70, datatype, true);
    dv.setInt16(72, bitpix, true);
    pixdim.forEach((p, i) => dv.setFloat32(76 + 4 * i, p, true));
    dv.setFloat32(108, voxOffset, true);
    dv.setFloat32(112, slope, true);
    dv.setFloat32(116, inter, true);
    out[123] = NIFTI_UNITS_MM_SEC;
    writeAscii(out, 148, descrip);
    dv.setInt16(252, 1, true);
    dv.setInt16(254, 1, true);
    q.quatern.forEach((v, i) => dv.setFloat32(256 + 4 * i, v, true));
    q.qoffset.forEach((v, i) => dv.setFloat32(268 + 4 * i, v, true));
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) dv.setFloat32(280 + 16 * r + 4 * c, A[r]![c]!, true);
    writeAscii(out, 344, 'n+1\0');
  } else {
    dv.setInt32(0, 540, true);
    writeAscii(out, 4, 'n+2\0\r\n\x1a\n');
    dv.setInt16(12, datatype, true);
    dv.setInt16(14, bitpix, true);
    dimAll.forEach((d, i) => dv.setBigInt64(16 + 8 * i, BigInt(d), true));
    pixdim.forEach((p, i) => dv.setFloat64(104 + 8 * i, p, true));
    dv.setBigInt64(168, BigInt(voxOffset), true);
    dv.setFloat64(176, slope, true);
    dv.setFloat64(184, inter, true);
    writeAscii(out, 240, descrip);
    dv.setInt32(344, 1, true);
    dv.setInt32(348, 1, true);
    q.quatern.forEach((v, i) => dv.setFloat64(352 + 8 * i, v, true));
    q.qoffset.forEach((v, i) => dv.setFloat64(376 + 8 * i, v, true));
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) dv.setFloat64(400 + 32 * r + 8 * c, A[r]![c]!, true);
    dv.setInt32(500, NIFTI_UNITS_MM_SEC, true);
  }
  // extension flag bytes stay zero: no extensions
  return { header: out, values: n3 * (rgb ? 3 : 1) * extra, rgb, extra, n3 };
}

/** Input bytes per step of the streamed gzip: the compressed file is never whole in memory, nor a copy of the voxels. */
const GZIP_STEP = 4 << 20;

/**
 * Writes the file as writeNifti would give it, byte for byte, without building it in memory: gzipped output is
 * deflated from the voxels in steps straight into the file. Written to a temporary sibling, fsynced and renamed
 * (a kill leaves the old file or the complete new one).
 */
export async function writeNiftiFile(path: string, volume: Volume, opts: WriteNiftiOptions = {}): Promise<void> {
  const [head, body] = niftiParts(volume, { ...opts, gzip: false }) as [Uint8Array, Uint8Array];
  await writeAtomicWith(path, async (fh) => {
    if (!opts.gzip) {
      await writeAll(fh, head);
      await writeAll(fh, body);
      return;
    }
    const steps = function* () {
      yield head;
      for (let o = 0; o < body.length; o += GZIP_STEP) yield body.subarray(o, Math.min(body.length, o + GZIP_STEP));
    };
    // the same deflate settings as gzipSync in niftiParts: deflate's output does not depend on how its
    // input is divided, so the bytes are the same
    const gz = Readable.from(steps(), { objectMode: false }).pipe(createGzip({ level: 6 }));
    for await (const chunk of gz as AsyncIterable<Buffer>) await writeAll(fh, chunk);
  });
}

// --- internal ---

function writeAscii(b: Uint8Array, at: number, s: string): void {
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i) & 0xff;
}

function isBigEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;
}
