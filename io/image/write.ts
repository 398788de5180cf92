/**
 * PNG writer for a 2D volume or one slice of a 3D volume, gray or RGB, 8 or 16 bits. Voxel (x, y) becomes
 * column x, row y (row 0 at the top), the inverse of readImage; reorient first if another view is wanted.
 * Real values (rescale applied) are rounded and clipped to the type range, or mapped linearly from a window.
 */
import { GatedError } from '../../core/errors.ts';
import type { Volume } from '../volume.ts';
import { loadSharp } from './sharp_setup.ts';

export interface PngOptions {
  /** Default: 8 for uint8/int8 data or when a window is given, else 16. */
  bitDepth?: 8 | 16;
  /** Index along z; default: the middle slice (the only one of a 2D volume). */
  slice?: number;
  /** Real values lo..hi map linearly onto 0..max (CT/MR previews); outside values clip. */
  window?: [number, number];
}

/** Encodes one slice as PNG; values are rounded half up, then clipped to [0, 2^bitDepth - 1]. */
export async function writePng(volume: Volume, opts: PngOptions = {}): Promise<Uint8Array> {
  const [nx = 0, ny = 0, nz = 1, n4 = 1] = volume.shape;
  const rgb = volume.meta.components === 'rgb';
  if (volume.shape.length > 4 || (rgb ? n4 !== 3 : n4 !== 1)) {
    throw new GatedError('shape', `PNG holds one gray or RGB plane; this volume has shape [${volume.shape.join(', ')}]${rgb ? '' : ' (4th axis must be 1)'}`);
  }
  if (nx < 1 || ny < 1) throw new GatedError('shape', `cannot write an empty image (shape [${volume.shape.join(', ')}])`);
  const k = opts.slice ?? Math.floor(nz / 2);
  if (!Number.isInteger(k) || k < 0 || k >= nz) throw new GatedError('config', `slice ${k} is outside 0..${nz - 1}`);
  const window = opts.window;
  if (window && !(Number.isFinite(window[0]) && Number.isFinite(window[1]) && window[1] > window[0])) {
    throw new GatedError('config', `window [${window.join(', ')}] must be finite with lo < hi`);
  }
  const depth: 8 | 16 = opts.bitDepth ?? (window || volume.dtype === 'uint8' || volume.dtype === 'int8' ? 8 : 16);
  if (depth !== 8 && depth !== 16) throw new GatedError('config', `bitDepth must be 8 or 16, not ${String(depth)}`);

  const max = depth === 8 ? 255 : 65535;
  const channels = rgb ? 3 : 1;
  const n = nx * ny;
  const slope = volume.meta.rescale?.slope ?? 1;
  const inter = volume.meta.rescale?.intercept ?? 0;
  const scale = window ? max / (window[1] - window[0]) : 1;
  const lo = window ? window[0] : 0;
  const out = depth === 8 ? new Uint8Array(n * channels) : new Uint16Array(n * channels);
  const src = volume.data;
  for (let c = 0; c < channels; c++) {
    // Planar x-fastest volume → interleaved rows for the encoder.
    const base = (c * nz + k) * n;
    for (let p = 0; p < n; p++) {
      const real = (src[base + p] as number) * slope + inter;
      const v = Math.floor((real - lo) * scale + 0.5);
      out[p * channels + c] = v > max ? max : v >= 0 ? v : 0; // NaN lands on 0
    }
  }

  const sharp = await loadSharp();
  // sharp takes the sample depth from the typed array's class (Uint16Array → ushort).
  const img = sharp(out, { raw: { width: nx, height: ny, channels: channels as 1 | 3 } })
    .toColourspace(rgb ? (depth === 16 ? 'rgb16' : 'srgb') : depth === 16 ? 'grey16' : 'b-w')
    .png({ compressionLevel: 6 });
  const buf = await img.toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
