/**
 * Stored pixel values from PixelData: native (any byte order, 1-bit, planar or interleaved, YBR) or
 * encapsulated (frames split without trusting the offset table, then decoded). The result is the native
 * typed array for BitsAllocated/PixelRepresentation with BitsStored applied (masked or sign-extended),
 * samples interleaved, YBR_FULL(_422) converted to RGB as pydicom's convert_color_space does.
 */
import { GatedError } from '../../core/errors.ts';
import { swapBytes } from '../bytes.ts';
import type { VoxelArray } from '../volume.ts';
import { decodeFrame, type FrameSpec } from './codecs.ts';
import type { DataSet, Element } from './dataset.ts';
import { splitFrames } from './frames.ts';
import type { TransferSyntax } from './transfer_syntax.ts';
import type { DicomObject } from './types.ts';

type Header = Omit<DicomObject, 'pixels'>;

/**
 * With `scratch`, a result that is not native pixels used in place may live in scratch.buf (grown as
 * needed, up to 64 MiB): valid only until the next decode with the same scratch.
 */
export async function decodePixels(ds: DataSet, el: Element, ts: TransferSyntax, h: Header, scratch?: { buf: Uint8Array }): Promise<VoxelArray> {
  const pixelsPerFrame = h.rows * h.columns;
  const spp = h.samplesPerPixel;
  const bps = Math.max(1, h.bitsAllocated / 8);
  const frameBytes = pixelsPerFrame * spp * bps;
  if (ts.codec === 'native' && spp === 1 && h.bitsAllocated >= 8 && (ts.littleEndian || bps === 1)) {
    const src = ds.byteArray;
    const at = src.byteOffset + el.dataOffset;
    // Aligned native pixels are used where they lie in the file's buffer: no second copy of every slice.
    // BitsStored masking then edits those bytes in place; it is idempotent, so bytes that are decoded
    // again (a zip entry held in memory) give the same values.
    if (at % bps === 0 && el.length >= frameBytes * h.numberOfFrames) {
      const out = typed(new Uint8Array(src.buffer, at, frameBytes * h.numberOfFrames), h.bitsAllocated, h.pixelRepresentation);
      applyBitsStored(out, h.bitsStored, h.bitsAllocated, h.pixelRepresentation);
      return out;
    }
  }
  // aligned for typed views; every byte of it is written below, so a reused scratch buffer shows nothing stale
  const raw = rawBuffer(frameBytes * h.numberOfFrames, scratch);
  let interleaved = h.planarConfiguration === 0;
  let ybr = h.photometric === 'YBR_FULL' || h.photometric === 'YBR_FULL_422';

  if (ts.codec === 'native') {
    const src = ds.byteArray.subarray(el.dataOffset, el.dataOffset + el.length);
    if (h.bitsAllocated === 1) {
      for (let i = 0; i < raw.length; i++) raw[i] = (src[i >> 3]! >> (i & 7)) & 1;
    } else if (h.photometric === 'YBR_FULL_422' && spp === 3 && bps === 1) {
      expand422(src, raw, h.rows, h.columns, h.numberOfFrames);
      interleaved = true;
    } else {
      raw.set(src.subarray(0, raw.length));
      if (!ts.littleEndian && bps > 1) swapBytes(raw, bps);
    }
  } else {
    const frames = splitFrames(ds, el, h.numberOfFrames, ts.codec);
    const spec: FrameSpec = { rows: h.rows, columns: h.columns, samplesPerPixel: spp, bitsAllocated: h.bitsAllocated, pixelRepresentation: h.pixelRepresentation, photometric: h.photometric };
    for (let f = 0; f < frames.length; f++) {
      await decodeFrame(ts.codec, frames[f]!, spec, (decoded) => {
        if (decoded.length < frameBytes) throw new GatedError('decode_failed', `frame ${f} decoded to ${decoded.length} bytes; ${frameBytes} expected`);
        raw.set(decoded.subarray(0, frameBytes), f * frameBytes);
      });
    }
    // codecs return interleaved samples; lossy JPEG/J2K colour codecs already return RGB
    interleaved = true;
    if (ts.codec !== 'rle') ybr = false;
  }

  if (spp === 3 && !interleaved) planarToInterleaved(raw, pixelsPerFrame, h.numberOfFrames, bps);
  const out = typed(raw, h.bitsAllocated, h.pixelRepresentation);
  applyBitsStored(out, h.bitsStored, h.bitsAllocated, h.pixelRepresentation);
  if (spp === 3 && ybr && bps === 1) ybrToRgb(out as Uint8Array);
  return out;
}

/** One decoded frame's bytes as stored values (BitsStored applied), in place: what decodePixels makes of it. */
export function storedValues(raw: Uint8Array, h: Pick<Header, 'bitsAllocated' | 'bitsStored' | 'pixelRepresentation'>): VoxelArray {
  const out = typed(raw, h.bitsAllocated, h.pixelRepresentation);
  applyBitsStored(out, h.bitsStored, h.bitsAllocated, h.pixelRepresentation);
  return out;
}

// --- internal ---

function rawBuffer(n: number, scratch: { buf: Uint8Array } | undefined): Uint8Array {
  if (!scratch || n > SCRATCH_MAX) return new Uint8Array(n);
  if (scratch.buf.length < n) scratch.buf = new Uint8Array(n);
  return scratch.buf.subarray(0, n);
}

/** Larger results (multi-frame objects) get their own buffer, so a read never keeps one alive. */
const SCRATCH_MAX = 64 * 1024 * 1024;

function typed(raw: Uint8Array, bitsAllocated: number, signed: 0 | 1): VoxelArray {
  const b = raw.buffer;
  const o = raw.byteOffset;
  if (bitsAllocated <= 8) return signed ? new Int8Array(b, o, raw.length) : raw;
  if (bitsAllocated === 16) return signed ? new Int16Array(b, o, raw.length >> 1) : new Uint16Array(b, o, raw.length >> 1);
  return signed ? new Int32Array(b, o, raw.length >> 2) : new Uint32Array(b, o, raw.length >> 2);
}

export function applyBitsStored(a: VoxelArray, stored: number, allocated: number, signed: 0 | 1): void {
  if (stored >= allocated || allocated === 1) return;
  const mask = stored >= 32 ? 0xffffffff : (1 << stored) - 1;
  if (!signed) {
    for (let i = 0; i < a.length; i++) a[i] = (a[i]! & mask) >>> 0;
    return;
  }
  const shift = 32 - stored;
  for (let i = 0; i < a.length; i++) a[i] = ((a[i]! & mask) << shift) >> shift;
}

function planarToInterleaved(b: Uint8Array, pixels: number, frames: number, bps: number): void {
  const frameBytes = pixels * 3 * bps;
  const tmp = new Uint8Array(frameBytes);
  for (let f = 0; f < frames; f++) {
    const base = f * frameBytes;
    for (let p = 0; p < pixels; p++) {
      for (let s = 0; s < 3; s++) {
        for (let k = 0; k < bps; k++) tmp[(p * 3 + s) * bps + k] = b[base + (s * pixels + p) * bps + k]!;
      }
    }
    b.set(tmp, base);
  }
}

/** YBR_FULL_422 native: each pair of pixels is stored Y1 Y2 Cb Cr. */
function expand422(src: Uint8Array, out: Uint8Array, rows: number, cols: number, frames: number): void {
  let s = 0;
  let o = 0;
  const pairs = (rows * cols * frames) >> 1;
  for (let p = 0; p < pairs; p++, s += 4) {
    const y1 = src[s]!, y2 = src[s + 1]!, cb = src[s + 2]!, cr = src[s + 3]!;
    out[o++] = y1; out[o++] = cb; out[o++] = cr;
    out[o++] = y2; out[o++] = cb; out[o++] = cr;
  }
}

/** ITU-R BT.601 full-range YCbCr → RGB, rounded and clipped like pydicom's convert_color_space. */
function ybrToRgb(a: Uint8Array): void {
  for (let i = 0; i + 2 < a.length; i += 3) {
    const y = a[i]!, cb = a[i + 1]! - 128, cr = a[i + 2]! - 128;
    a[i] = clip(y + 1.402 * cr);
    a[i + 1] = clip(y - (0.114 * 1.772 / 0.587) * cb - (0.299 * 1.402 / 0.587) * cr);
    a[i + 2] = clip(y + 1.772 * cb);
  }
}

function clip(v: number): number {
  const r = Math.round(v);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}
