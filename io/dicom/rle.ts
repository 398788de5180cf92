/**
 * DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header of up to 15 segment offsets, each segment a
 * PackBits stream of one byte plane (most significant byte first, per sample). Output is the native
 * little-endian, sample-interleaved layout.
 */
import { GatedError } from '../../core/errors.ts';
import type { FrameSpec } from './codecs.ts';

export function decodeRle(data: Uint8Array, spec: FrameSpec): Uint8Array {
  if (data.length < 64) throw new GatedError('decode_failed', 'RLE frame is shorter than its 64-byte header');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nSeg = dv.getUint32(0, true);
  const bytesPerSample = Math.ceil(spec.bitsAllocated / 8);
  const expected = bytesPerSample * spec.samplesPerPixel;
  if (nSeg !== expected) throw new GatedError('decode_failed', `RLE frame has ${nSeg} segments; ${expected} expected`);
  const pixels = spec.rows * spec.columns;
  const out = new Uint8Array(pixels * expected);
  for (let s = 0; s < nSeg; s++) {
    const start = dv.getUint32(4 + 4 * s, true);
    const end = s + 1 < nSeg ? dv.getUint32(8 + 4 * s, true) : data.length;
    if (start < 64 || start > data.length || end < start || end > data.length) throw new GatedError('decode_failed', `RLE segment ${s} offsets out of range`);
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample); // segments go most significant first
    const stride = expected;
    let o = sample * bytesPerSample + byteInSample;
    let written = 0;
    let i = start;
    while (i < end && written < pixels) {
      const n = (data[i++]! << 24) >> 24; // signed header byte
      if (n >= 0) {
        const count = n + 1;
        for (let k = 0; k < count && i < end && written < pixels; k++, written++, o += stride) out[o] = data[i++]!;
      } else if (n !== -128) {
        const count = 1 - n;
        const v = data[i++]!;
        for (let k = 0; k < count && written < pixels; k++, written++, o += stride) out[o] = v;
      }
    }
    if (written < pixels) throw new GatedError('decode_failed', `RLE segment ${s} ends after ${written} of ${pixels} pixels`);
  }
  return out;
}
