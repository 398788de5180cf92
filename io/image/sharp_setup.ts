/**
 * sharp (libvips) configured once for untrusted input: every loader is blocked except the fuzzed
 * "web" buffer loaders we accept (PNG, JPEG, TIFF, WebP), and no operation caches decoded images.
 */
import sharp from 'sharp';

let configured = false;

export function safeSharp(): typeof sharp {
  if (!configured) {
    sharp.block({ operation: ['VipsForeignLoad'] });
    sharp.unblock({ operation: ['VipsForeignLoadPngBuffer', 'VipsForeignLoadJpegBuffer', 'VipsForeignLoadTiffBuffer', 'VipsForeignLoadWebpBuffer'] });
    sharp.cache(false);
    configured = true;
  }
  return sharp;
}
