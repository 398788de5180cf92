/**
 * The one place sharp is loaded and hardened for untrusted input: every libvips loader is blocked except the
 * PNG/JPEG/TIFF/WebP buffer loaders (libvips calls the rest "rather vulnerable"), the operation cache is off
 * so one job's pixels never outlive it, and sharp's error strings are translated into stable codes.
 */
import type { Sharp, SharpOptions } from 'sharp';
import { GatedError, toGatedError, type ErrorCode } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';

type SharpModule = (typeof import('sharp'))['default'];

/** libvips class names of the loaders allowed to run on untrusted bytes (sharp always passes a buffer). */
export const ALLOWED_LOADERS = ['VipsForeignLoadPngBuffer', 'VipsForeignLoadJpegBuffer', 'VipsForeignLoadTiffBuffer', 'VipsForeignLoadWebpBuffer'] as const;

let loaded: Promise<SharpModule> | undefined;

/**
 * sharp with only the allowed loaders unblocked. Loaded lazily so DICOM/NIfTI runs never pay for the native
 * module. `block` is process-wide: creating images from raw pixels (the PNG writer) is unaffected.
 */
export function loadSharp(): Promise<SharpModule> {
  if (loaded) return loaded;
  const pending = import('sharp').then(
    (mod) => {
      const sharp = mod.default;
      sharp.block({ operation: ['VipsForeignLoad'] });
      sharp.unblock({ operation: [...ALLOWED_LOADERS] });
      sharp.cache(false);
      return sharp;
    },
    (e: unknown) => {
      loaded = undefined;
      throw toGatedError(e, 'missing_dependency', 'cannot load sharp');
    },
  );
  loaded = pending;
  return pending;
}

/**
 * A sharp pipeline over untrusted bytes: pixel cap from the limits, warnings are errors (truncated data must
 * not decode to grey), first page only, EXIF orientation applied, embedded ICC profiles ignored so samples
 * stay as stored (as PIL and ITK return them).
 */
export async function untrustedSharp(bytes: Uint8Array, limits: Limits, opts: { autoOrient?: boolean } = {}): Promise<Sharp> {
  const sharp = await loadSharp();
  const options: SharpOptions = {
    limitInputPixels: limits.maxImagePixels,
    failOn: 'warning',
    pages: 1,
    autoOrient: opts.autoOrient ?? true,
    ignoreIcc: true,
  };
  return sharp(bytes, options);
}

/**
 * sharp reports every failure as a plain Error with a libvips message; map the ones a user can cause.
 * With `magicMatched`, the bytes already passed our sniff for an allowed format, so "unsupported format"
 * means the loader could not parse what follows the magic: the file is damaged, not foreign.
 */
export function sharpError(e: unknown, context: string, opts: { magicMatched?: boolean } = {}): GatedError {
  if (e instanceof GatedError) return e;
  const message = e instanceof Error ? e.message : String(e);
  let code: ErrorCode = 'corrupt_image';
  if (/exceeds pixel limit/i.test(message)) code = 'too_many_pixels';
  else if (/unsupported image format|is blocked/i.test(message)) code = opts.magicMatched ? 'corrupt_image' : 'not_image';
  else if (/could not allocate|out of memory/i.test(message)) code = 'too_large';
  return new GatedError(code, `${context}: ${message}`, { cause: e });
}
