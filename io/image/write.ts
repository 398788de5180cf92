/**
 * PNG writer for 2D volumes (or one slice of a 3D volume): gray or RGB, 8 or 16 bits. Real values
 * (rescale applied) are written as they are when they fit the chosen depth; otherwise, or when a window
 * is given, they are mapped linearly from the window to the full range.
 */
import { GatedError } from '../../core/errors.ts';
import type { Volume } from '../volume.ts';
import { safeSharp } from './sharp_setup.ts';

export interface PngOptions {
  bitDepth?: 8 | 16;
  slice?: number;
  window?: [number, number];
}

export async function writePng(volume: Volume, opts: PngOptions = {}): Promise<Uint8Array> {
  const [nx = 1, ny = 1, nz = 1] = volume.shape;
  const k = opts.slice ?? 0;
  if (k < 0 || k >= nz) throw new GatedError('usage', `slice ${k} is outside 0..${nz - 1}`);
  const channels = volume.meta.components === 'rgb' ? 3 : 1;
  const n = nx * ny;
  const slope = volume.meta.rescale?.slope ?? 1;
  const inter = volume.meta.rescale?.intercept ?? 0;
  const value = (c: number, p: number) => (volume.data[(c * nz + k) * n + p] as number) * slope + inter;
  let lo = Infinity;
  let hi = -Infinity;
  for (let c = 0; c < channels; c++) for (let p = 0; p < n; p++) {
    const v = value(c, p);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const integral = Number.isInteger(lo) && Number.isInteger(hi) && ['uint8', 'uint16', 'int8', 'int16', 'int32', 'uint32'].includes(volume.dtype) && slope === Math.round(slope) && inter === Math.round(inter);
  const depth: 8 | 16 = opts.bitDepth ?? (integral && lo >= 0 && hi <= 255 ? 8 : 16);
  const max = depth === 8 ? 255 : 65535;
  const window = opts.window ?? (integral && lo >= 0 && hi <= max ? undefined : ([lo, hi] as [number, number]));
  const map = window ? (v: number) => ((v - window[0]) / (window[1] - window[0] || 1)) * max : (v: number) => v;
  const out = depth === 8 ? new Uint8Array(n * channels) : new Uint16Array(n * channels);
  for (let p = 0; p < n; p++) for (let c = 0; c < channels; c++) out[p * channels + c] = Math.min(max, Math.max(0, Math.round(map(value(c, p)))));
  const sharp = safeSharp();
  const buf = await sharp(Buffer.from(out.buffer, out.byteOffset, out.byteLength), { raw: { width: nx, height: ny, channels: channels as 1 | 3, ...(depth === 16 ? { premultiplied: false } : {}) } })
    .toColourspace(channels === 1 ? (depth === 16 ? 'grey16' : 'b-w') : depth === 16 ? 'rgb16' : 'srgb')
    .png({ compressionLevel: 6 })
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
