/**
 * PNG/JPEG/TIFF/WebP → Volume: [width, height, 1] gray or [width, height, 1, 3] RGB (planar), uint8 or
 * uint16 as stored. The format comes from magic bytes (never the name); the header is checked against the
 * pixel and voxel caps before anything is decoded; EXIF orientation is applied, CMYK becomes sRGB, the
 * first page of a multi-page file is read, and alpha is dropped (each with a warning).
 */
import type { Metadata, Sharp } from 'sharp';
import { GatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import type { Mat4 } from '../geometry.ts';
import { sniffFormat } from '../sniff.ts';
import type { ReadContext } from '../types.ts';
import type { IoWarning, Volume } from '../volume.ts';
import { pixelSpacing } from './density.ts';
import { sharpError, untrustedSharp } from './sharp_setup.ts';

const ACCEPTED = new Set(['png', 'jpeg', 'tiff', 'webp']);

/** What applying each EXIF orientation does to the stored pixels (PIL's exif_transpose does the same). */
const ORIENTATION_NAMES: Record<number, string> = {
  2: 'mirrored left-right',
  3: 'rotated 180°',
  4: 'mirrored top-bottom',
  5: 'transposed (mirrored across the main diagonal)',
  6: 'rotated 90° clockwise',
  7: 'transversed (mirrored across the anti-diagonal)',
  8: 'rotated 90° counter-clockwise',
};

/** Reads one ordinary image; every failure is a GatedError (not_image, too_many_pixels, corrupt_image, ...). */
export async function readImage(bytes: Uint8Array, ctx: ReadContext, name: string): Promise<Volume> {
  const { limits } = ctx;
  if (bytes.length > limits.maxFileBytes) throw new GatedError('too_large', `the image file is ${bytes.length} bytes; the limit is ${limits.maxFileBytes}`);
  // 512 bytes, not 4: a DICOM preamble may itself start with TIFF magic (CT_small.dcm does), and DICOM wins.
  const sniffed = sniffFormat(bytes.subarray(0, 512));
  if (!ACCEPTED.has(sniffed)) {
    throw new GatedError('not_image', `not a PNG, JPEG, TIFF or WebP image (content looks like: ${sniffed})`, { details: { detected: sniffed } });
  }

  const meta = await readHeader(bytes, limits);
  const warnings = headerWarnings(meta);
  const gray = meta.space === 'b-w' || meta.space === 'grey16';
  const sixteen = meta.depth === 'ushort';
  if (meta.depth !== 'uchar' && !sixteen) {
    throw new GatedError('unsupported_datatype', `${meta.format} samples of type '${meta.depth}' are not supported (8- or 16-bit unsigned only)`, { details: { depth: meta.depth } });
  }

  // Grey 8-bit with alpha goes through sRGB: libvips's grey raw output keeps band 0 only, and we want the alpha to report on it.
  const target = gray ? (sixteen ? 'grey16' : meta.hasAlpha ? 'srgb' : 'b-w') : sixteen ? 'rgb16' : 'srgb';
  const raw = await decode(await untrustedSharp(bytes, limits), target, sixteen);
  const { width, height, channels } = raw;
  const hasAlpha = channels === 2 || channels === 4;
  const planes = gray ? 1 : 3;
  const n = width * height;
  const out = sixteen ? new Uint16Array(n * planes) : new Uint8Array(n * planes);
  const src = raw.samples;
  let transparent = 0;
  const opaque = sixteen ? 65535 : 255;
  for (let p = 0; p < n; p++) {
    const at = p * channels;
    if (planes === 1) out[p] = src[at]!;
    else {
      out[p] = src[at]!;
      out[n + p] = src[at + 1]!;
      out[2 * n + p] = src[at + 2]!;
    }
    if (hasAlpha && src[at + channels - 1]! !== opaque) transparent++;
  }
  if (hasAlpha) {
    // Colour samples are kept as stored (as PIL's convert('RGB') does): compositing would invent a background.
    warnings.push({
      code: 'alpha_dropped',
      message: transparent === 0 ? 'the alpha channel is fully opaque and was dropped' : `the alpha channel was dropped; ${transparent} pixel(s) were not opaque and keep their stored colour`,
      details: { transparentPixels: transparent },
    });
  }

  // Orientations 5-8 transpose the stored axes, and the stated densities go with them.
  const stated = pixelSpacing(bytes, meta);
  const [sx, sy] = (meta.orientation ?? 1) >= 5 ? [stated[1], stated[0]] : stated;
  ctx.onProgress?.(1, 1, 'image');
  return {
    data: out,
    shape: planes === 1 ? [width, height, 1] : [width, height, 1, 3],
    spacing: planes === 1 ? [sx, sy, 1] : [sx, sy, 1, 1],
    // Column → +x, row (downwards) → +y in LPS, i.e. diag(-1,-1,1) in RAS: how ITK/3D Slicer place a PNG, so our NIfTI overlays it.
    affine: lpsPixelAffine([sx, sy]),
    dtype: sixteen ? 'uint16' : 'uint8',
    meta: { format: 'image', components: planes === 3 ? 'rgb' : 'scalar', orientation: 'LPS', source: name, warnings },
  };
}

// --- internal ---

async function readHeader(bytes: Uint8Array, limits: Limits): Promise<Metadata> {
  let meta: Metadata;
  try {
    meta = await (await untrustedSharp(bytes, limits)).metadata();
  } catch (e) {
    throw sharpError(e, 'cannot read the image header', { magicMatched: true });
  }
  if (!meta.width || !meta.height) throw new GatedError('corrupt_image', 'the image header states no size');
  const pixels = meta.width * meta.height;
  if (pixels > limits.maxImagePixels) {
    throw new GatedError('too_many_pixels', `${meta.width}x${meta.height} exceeds the limit of ${limits.maxImagePixels} pixels`, { details: { width: meta.width, height: meta.height } });
  }
  // Worst case decoded buffer: 4 bands of 16 bits, plus our planar copy.
  const bytesNeeded = pixels * 4 * 2 * 2;
  if (bytesNeeded > limits.maxVoxelBytes) throw new GatedError('too_large', `decoding ${meta.width}x${meta.height} needs up to ${bytesNeeded} bytes; the limit is ${limits.maxVoxelBytes}`);
  return meta;
}

function headerWarnings(meta: Metadata): IoWarning[] {
  const warnings: IoWarning[] = [];
  if ((meta.pages ?? 1) > 1) warnings.push({ code: 'first_page_only', message: `the image has ${meta.pages} pages or frames; only the first is read`, details: { pages: meta.pages } });
  const o = meta.orientation;
  if (o !== undefined && o !== 1) {
    warnings.push({ code: 'exif_orientation', message: `EXIF orientation ${o} was applied: pixels ${ORIENTATION_NAMES[o] ?? 'left as stored (unknown value)'}`, details: { orientation: o } });
  }
  if (meta.space === 'cmyk') warnings.push({ code: 'cmyk_converted', message: 'CMYK pixels were converted to sRGB (libvips CMYK profile)' });
  else if (meta.space !== 'b-w' && meta.space !== 'grey16' && meta.space !== 'srgb' && meta.space !== 'rgb16') {
    warnings.push({ code: 'colourspace_converted', message: `pixels in colourspace '${meta.space}' were converted to sRGB` });
  }
  return warnings;
}

interface RawPixels {
  samples: Uint8Array | Uint16Array;
  width: number;
  height: number;
  channels: number;
}

async function decode(pipeline: Sharp, target: 'b-w' | 'grey16' | 'srgb' | 'rgb16', sixteen: boolean): Promise<RawPixels> {
  try {
    const { data, info } = await pipeline.toColourspace(target).raw({ depth: sixteen ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
    const expected = info.width * info.height * info.channels * (sixteen ? 2 : 1);
    if (data.byteLength !== expected) throw new GatedError('corrupt_image', `the decoder returned ${data.byteLength} bytes, expected ${expected}`);
    // Copy into a fresh, aligned buffer: sharp's Buffer may sit at an odd offset inside a pool.
    const copy = new Uint8Array(data);
    const samples = sixteen ? new Uint16Array(copy.buffer, 0, copy.byteLength / 2) : copy;
    return { samples, width: info.width, height: info.height, channels: info.channels };
  } catch (e) {
    throw sharpError(e, 'cannot decode the image', { magicMatched: true });
  }
}

function lpsPixelAffine([sx, sy]: [number, number]): Mat4 {
  return [
    [-sx, 0, 0, 0],
    [0, -sy, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ];
}
