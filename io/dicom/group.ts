/**
 * Slices of a DICOM series: every frame of every object becomes one slice record; records are grouped
 * into geometric stacks (series, size, samples, orientation, echo) that can each become one volume.
 */
import { cross, dot, type Vec3 } from '../geometry.ts';
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
  key: string;
  slices: SliceRecord[];
  normal: Vec3 | undefined;
}

export function groupStacks(headers: DicomHeader[]): Stack[] {
  const stacks = new Map<string, Stack>();
  headers.forEach((h, object) => {
    h.frames.forEach((geom, frame) => {
      const o = geom.orientation;
      const orientKey = o ? o.map((v) => v.toFixed(3)).join(',') : 'none';
      const key = [h.seriesInstanceUID ?? `object-${object}`, `${h.columns}x${h.rows}x${h.samplesPerPixel}`, h.bitsAllocated, orientKey, h.echoNumber ?? ''].join('|');
      let s = stacks.get(key);
      if (!s) {
        const normal = o ? (normalize(cross([o[0], o[1], o[2]], [o[3], o[4], o[5]])) as Vec3) : undefined;
        s = { key, slices: [], normal };
        stacks.set(key, s);
      }
      const d = s.normal && geom.position ? dot(s.normal, geom.position) : Number.NaN;
      s.slices.push({ object, frame, header: h, geom, d });
    });
  });
  // Stable order of stacks: by series number, then first appearance.
  return [...stacks.values()].sort((a, b) => (a.slices[0]!.header.seriesNumber ?? 0) - (b.slices[0]!.header.seriesNumber ?? 0));
}

function normalize(v: number[]): number[] {
  const n = Math.hypot(v[0]!, v[1]!, v[2]!) || 1;
  return v.map((x) => x / n);
}
