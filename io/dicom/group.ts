/**
 * Slices of a DICOM series: every frame of every object becomes one slice record; records are grouped
 * into geometric stacks (series, image size and pixel format, orientation within a tolerance, echo) that
 * can each become one volume. When one series splits, each part says why, so the summaries differ.
 */
import { cross, dot, type Vec3 } from '../geometry.ts';
import type { IoWarning } from '../volume.ts';
import type { DicomHeader } from './parse.ts';
import type { FrameGeometry } from './types.ts';

export interface SliceRecord {
  object: number;
  frame: number;
  header: DicomHeader;
  geom: FrameGeometry;
  /** Position along the stack normal (mm); NaN without geometry. */
  d: number;
}

export interface Stack {
  slices: SliceRecord[];
  /** Unit row and column directions (normalised ImageOrientationPatient) shared by every slice, if valid. */
  iop: [number, number, number, number, number, number] | undefined;
  normal: Vec3 | undefined;
  /** Problems found while grouping (invalid orientation, part of a split series). */
  warnings: IoWarning[];
}

/** Largest difference of direction cosines still counted as the same orientation (~0.06°). */
export const ORIENTATION_TOLERANCE = 1e-3;

export function groupStacks(headers: readonly DicomHeader[]): Stack[] {
  // series → candidate stacks, in order of first appearance
  const bySeries = new Map<string, { key: string; stack: Stack; tag: Record<string, unknown> }[]>();
  headers.forEach((h, object) => {
    const seriesKey = h.seriesInstanceUID ?? `no-series-uid/${h.studyInstanceUID ?? ''}/${h.seriesNumber ?? ''}`;
    const parts = bySeries.get(seriesKey) ?? [];
    bySeries.set(seriesKey, parts);
    h.frames.forEach((geom, frame) => {
      const iop = validIop(geom.orientation);
      const format = `${h.columns}x${h.rows}x${h.samplesPerPixel}/${h.bitsAllocated}/${h.pixelRepresentation}`;
      const echo = h.echoNumber ?? '';
      const part = parts.find((p) => p.key === `${format}|${echo}` && sameOrientation(p.stack.iop, iop, geom.orientation !== undefined, p.tag.hasIop as boolean));
      let stack = part?.stack;
      if (!stack) {
        stack = { slices: [], iop, normal: iop ? cross([iop[0], iop[1], iop[2]], [iop[3], iop[4], iop[5]]) : undefined, warnings: [] };
        if (geom.orientation && !iop) {
          stack.warnings.push({ code: 'bad_orientation', message: 'ImageOrientationPatient is not two orthogonal unit vectors; the slice geometry is ignored' });
        }
        parts.push({
          key: `${format}|${echo}`,
          stack,
          tag: { hasIop: geom.orientation !== undefined, size: `${h.columns}x${h.rows}`, samples: h.samplesPerPixel, bits: h.bitsAllocated, ...(h.echoNumber !== undefined ? { echoNumber: h.echoNumber } : {}) },
        });
      }
      const d = stack.normal && geom.position ? dot(stack.normal, geom.position) : Number.NaN;
      stack.slices.push({ object, frame, header: h, geom, d });
    });
  });
  const out: Stack[] = [];
  for (const parts of bySeries.values()) {
    if (parts.length > 1) {
      const by = splitReasons(parts.map((p) => p.tag), parts.map((p) => p.stack.iop));
      parts.forEach((p, i) => {
        p.stack.warnings.push({
          code: 'series_split',
          message: `one of ${parts.length} stacks of this series (split by ${by.join(', ')})`,
          details: { part: i + 1, parts: parts.length, by, size: p.tag.size, ...(p.tag.echoNumber !== undefined ? { echoNumber: p.tag.echoNumber } : {}) },
        });
      });
    }
    for (const p of parts) out.push(p.stack);
  }
  // Stable order: by series number, then first appearance.
  return out
    .map((s, i) => ({ s, i }))
    .sort((a, b) => (a.s.slices[0]!.header.seriesNumber ?? 0) - (b.s.slices[0]!.header.seriesNumber ?? 0) || a.i - b.i)
    .map(({ s }) => s);
}

/** Normalised IOP, or undefined when the cosines are not (nearly) two orthogonal unit vectors. */
export function validIop(o: FrameGeometry['orientation']): Stack['iop'] {
  if (!o || !o.every(Number.isFinite)) return undefined;
  const r: Vec3 = [o[0], o[1], o[2]];
  const c: Vec3 = [o[3], o[4], o[5]];
  const nr = Math.hypot(...r);
  const nc = Math.hypot(...c);
  // Scanners print cosines with ~6 digits; anything further off than 1% is not a rotation.
  if (Math.abs(nr - 1) > 0.01 || Math.abs(nc - 1) > 0.01 || Math.abs(dot(r, c)) / (nr * nc) > 0.01) return undefined;
  return [r[0] / nr, r[1] / nr, r[2] / nr, c[0] / nc, c[1] / nc, c[2] / nc];
}

// --- internal ---

function sameOrientation(a: Stack['iop'], b: Stack['iop'], bPresent: boolean, aPresent: boolean): boolean {
  if (!a || !b) return !a && !b && aPresent === bPresent;
  for (let i = 0; i < 6; i++) if (Math.abs(a[i]! - b[i]!) > ORIENTATION_TOLERANCE) return false;
  return true;
}

function splitReasons(tags: Record<string, unknown>[], iops: Stack['iop'][]): string[] {
  const by: string[] = [];
  const differs = (f: (t: Record<string, unknown>) => unknown) => new Set(tags.map((t) => JSON.stringify(f(t)))).size > 1;
  if (differs((t) => t.size)) by.push('image size');
  if (differs((t) => [t.samples, t.bits])) by.push('pixel format');
  if (differs((t) => t.echoNumber)) by.push('echo');
  if (new Set(iops.map((o) => (o ? o.map((v) => v.toFixed(3)).join() : 'none'))).size > 1 || by.length === 0) by.push('orientation');
  return by;
}
