/**
 * Pixel spacing (mm) from the density an image file states, when it states one in physical units:
 * PNG pHYs in pixels per metre (read here, exactly, because libvips also reads the unit-less aspect
 * form as a density), JPEG/TIFF resolution with a unit (from sharp, in whole DPI). 72 DPI is what
 * libvips reports when a file states nothing and what many tools write by default, so it means "unknown".
 */
import type { Metadata } from 'sharp';

const PLACEHOLDER_DPI = 72;
const PNG_SIGNATURE_BYTES = 8;
const PHYS_UNIT_METRE = 1;

/** [x, y] millimetres per pixel, [1, 1] when the file gives no usable physical density. */
export function pixelSpacing(bytes: Uint8Array, meta: Metadata): [number, number] {
  if (meta.format === 'png') {
    const phys = pngPhys(bytes);
    if (!phys || phys.unit !== PHYS_UNIT_METRE || phys.x <= 0 || phys.y <= 0) return [1, 1];
    if (Math.round(phys.x * 0.0254) === PLACEHOLDER_DPI && phys.x === phys.y) return [1, 1];
    return [1000 / phys.x, 1000 / phys.y];
  }
  const dpi = meta.density;
  if (meta.resolutionUnit === undefined || dpi === undefined || !Number.isFinite(dpi) || dpi <= 0 || dpi === PLACEHOLDER_DPI) return [1, 1];
  return [25.4 / dpi, 25.4 / dpi];
}

// --- internal ---

/** Walks chunks up to the first IDAT (pHYs must precede it); every length is checked against the buffer. */
function pngPhys(b: Uint8Array): { x: number; y: number; unit: number } | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = PNG_SIGNATURE_BYTES;
  while (at + 8 <= b.length) {
    const len = dv.getUint32(at);
    const type = String.fromCharCode(b[at + 4]!, b[at + 5]!, b[at + 6]!, b[at + 7]!);
    if (type === 'IDAT' || type === 'IEND') return undefined;
    if (type === 'pHYs') {
      if (len !== 9 || at + 17 > b.length) return undefined;
      return { x: dv.getUint32(at + 8), y: dv.getUint32(at + 12), unit: b[at + 16]! };
    }
    at += 12 + len;
  }
  return undefined;
}
