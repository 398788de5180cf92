/**
 * Coded concepts the SEG object carries (segment category/type, derivation and purpose-of-reference
 * codes) and the recommended display colour, which DICOM stores as scaled CIELab rather than RGB.
 */
import { GatedError } from '../../core/errors.ts';
import type { Item } from './encode.ts';

export interface CodedConcept {
  /** CodeValue: at most 16 characters (SH). */
  value: string;
  /** CodingSchemeDesignator, e.g. 'SCT', 'DCM'. */
  scheme: string;
  meaning: string;
}

/** Default category and type when a segment names none: SNOMED CT 'Tissue'. */
export const TISSUE: CodedConcept = { value: '85756007', scheme: 'SCT', meaning: 'Tissue' };
export const DCM_SEGMENTATION: CodedConcept = { value: '113076', scheme: 'DCM', meaning: 'Segmentation' };
export const DCM_SOURCE_IMAGE: CodedConcept = { value: '121322', scheme: 'DCM', meaning: 'Source image for image processing operation' };

export function codeItem(c: CodedConcept): Item {
  return { '00080100': ['SH', c.value], '00080102': ['SH', c.scheme], '00080104': ['LO', c.meaning] };
}

/** Refuses codes that would not encode: CodeValue and scheme are SH (16 chars), meaning LO (64). */
export function checkCode(c: CodedConcept, what: string): void {
  const bad = (s: unknown, max: number) => typeof s !== 'string' || s.length === 0 || s.length > max || /[\\\x00-\x1f]/.test(s);
  if (bad(c.value, 16) || bad(c.scheme, 16) || bad(c.meaning, 64)) {
    throw new GatedError('config', `${what} is not a valid coded concept (value and scheme 1-16 characters, meaning 1-64, no backslash)`, {
      details: { value: c.value, scheme: c.scheme },
    });
  }
}

/**
 * sRGB (0-255) to DICOM's scaled CIELab (L 0-100 → 0-FFFFH; a*, b* -128..127 → 0-FFFFH), with the D65
 * white as dcmtk's conversion uses, so tools built on it show the colour we meant.
 */
export function srgbToDicomLab([r, g, b]: readonly [number, number, number]): [number, number, number] {
  for (const c of [r, g, b]) {
    if (!Number.isFinite(c) || c < 0 || c > 255) throw new GatedError('config', `colour components must be 0-255; got ${r},${g},${b}`);
  }
  const lin = (c: number) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const [R, G, B] = [lin(r), lin(g), lin(b)];
  const X = (0.412453 * R + 0.35758 * G + 0.180423 * B) / 0.95047;
  const Y = 0.212671 * R + 0.71516 * G + 0.072169 * B;
  const Z = (0.019334 * R + 0.119193 * G + 0.950227 * B) / 1.08883;
  const f = (t: number) => (t > (6 / 29) ** 3 ? Math.cbrt(t) : t / (3 * (6 / 29) ** 2) + 4 / 29);
  const L = 116 * f(Y) - 16;
  const a = 500 * (f(X) - f(Y));
  const bb = 200 * (f(Y) - f(Z));
  const clamp = (v: number) => Math.min(65535, Math.max(0, Math.round(v)));
  return [clamp((L / 100) * 65535), clamp((a + 128) * 257), clamp((bb + 128) * 257)];
}
