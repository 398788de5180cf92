/**
 * PNG/JPEG/TIFF/WebP → Volume [width, height, 1] (gray) or [width, height, 1, 3] (RGB, planar).
 * The format is sniffed from magic bytes (the name is never trusted); the pixel cap is checked from the
 * header before decoding; EXIF orientation is applied; 16-bit stays 16-bit.
 */
import { GatedError, toGatedError } from '../../core/errors.ts';
import { LPS_TO_RAS } from '../geometry.ts';
import { sniffFormat } from '../sniff.ts';
import type { ReadContext } from '../types.ts';
import type { IoWarning, Volume } from '../volume.ts';
import { safeSharp } from './sharp_setup.ts';

const ACCEPTED = new Set(['png', 'jpeg', 'tiff', 'webp']);

export async function readImage(bytes: Uint8Array, ctx: ReadContext, name: string): Promise<Volume> {
  const format = sniffFormat(bytes.subarray(0, 16));
  if (!ACCEPTED.has(format)) throw new GatedError('not_image', `not a PNG, JPEG, TIFF or WebP image (detected: ${format})`);
  const sharp = safeSharp();
  const warnings: IoWarning[] = [];
  const opts = { limitInputPixels: ctx.limits.maxImagePixels, failOn: 'warning' as const, pages: 1 };
  let meta;
  try {
    meta = await sharp(bytes, opts).metadata();
  } catch (e) {
    throw classify(e);
  }
  if (!meta.width || !meta.height) throw new GatedError('corrupt_image', 'the image header has no size');
  if (meta.width * meta.height > ctx.limits.maxImagePixels) {
    throw new GatedError('too_many_pixels', `${meta.width}x${meta.height} exceeds the limit of ${ctx.limits.maxImagePixels} pixels`);
  }
  if ((meta.pages ?? 1) > 1) warnings.push({ code: 'first_page_only', message: `the image has ${meta.pages} pages/frames; only the first is read` });
  if (meta.orientation && meta.orientation !== 1) warnings.push({ code: 'exif_orientation', message: `EXIF orientation ${meta.orientation} applied` });
  if (meta.hasAlpha) warnings.push({ code: 'alpha_dropped', message: 'the alpha channel is dropped' });
  const sixteen = meta.depth === 'ushort' || meta.depth === 'short';
  const gray = meta.channels !== undefined && meta.channels <= 2 && meta.space !== 'cmyk';
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    let img = sharp(bytes, opts).autoOrient().removeAlpha();
    img = gray ? img.toColourspace(sixteen ? 'grey16' : 'b-w') : img.toColourspace(sixteen ? 'rgb16' : 'srgb');
    raw = await img.raw({ depth: sixteen ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw classify(e);
  }
  const { width, height, channels } = raw.info;
  const n = width * height;
  const src = sixteen ? new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 2) : new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
  const out = sixteen ? new Uint16Array(n * channels) : new Uint8Array(n * channels);
  if (channels === 1) out.set(src.subarray(0, n));
  else for (let p = 0; p < n; p++) for (let c = 0; c < channels; c++) out[c * n + p] = src[p * channels + c]!;
  ctx.onProgress?.(1, 1, 'image');
  return {
    data: out,
    shape: channels === 1 ? [width, height, 1] : [width, height, 1, channels],
    spacing: channels === 1 ? [1, 1, 1] : [1, 1, 1, 1],
    // Column → +x, row (downwards) → +y in DICOM/ITK LPS: how 3D Slicer places a PNG, so outputs overlay it.
    affine: LPS_TO_RAS.map((r) => [...r]),
    dtype: sixteen ? 'uint16' : 'uint8',
    meta: { format: 'image', components: channels === 3 ? 'rgb' : 'scalar', orientation: 'LPS', source: name, warnings },
  };
}

function classify(e: unknown): GatedError {
  const msg = e instanceof Error ? e.message : String(e);
  if (/pixel limit/i.test(msg)) return new GatedError('too_many_pixels', msg);
  if (/blocked|unsupported image format|not a known file format/i.test(msg)) return new GatedError('not_image', msg);
  return toGatedError(e, 'corrupt_image', 'image');
}
