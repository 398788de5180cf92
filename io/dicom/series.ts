/**
 * A stack of slices → the plan of one volume: sorted along the slice normal by ImagePositionPatient,
 * spacing from positions (never SliceThickness), the affine from the first slice and the mean step, and
 * every irregularity reported: gantry tilt, uneven spacing, missing and duplicate slices, varying rescale.
 * Slices sharing a position become a 4th axis when something (temporal index, acquisition, frame of one
 * object) tells them apart regularly; otherwise they must hold identical pixels (checked while decoding).
 */
import { GatedError } from '../../core/errors.ts';
import { dicomAffine, dot, norm, scale, sub, type Mat4, type Vec3 } from '../geometry.ts';
import type { IoWarning, Rescale } from '../volume.ts';
import type { SliceRecord, Stack } from './group.ts';

export interface StackPlan {
  /** Slices in volume order: index k within t-major blocks of nz. */
  order: SliceRecord[];
  nz: number;
  nt: number;
  affine: Mat4;
  spacing: number[];
  /** Stack geometry, when every slice has a valid position and orientation. */
  geometry: { iop: NonNullable<Stack['iop']>; normal: Vec3; pixelSpacing: [number, number]; d: number[]; positions: Vec3[] } | undefined;
  /** Extra slices at a kept slice's position that must hold the same pixels as order[keep]. */
  twins: { keep: number; slice: SliceRecord }[];
  warnings: IoWarning[];
  /** Uniform modality LUT, or undefined when it varies between slices. */
  rescale: Rescale | undefined;
  /** Missing slices, uneven spacing or tilt: a resampled grid would differ from the acquired one. */
  irregular: boolean;
  /** The stack this plan came from (after any split), to plan again without undecodable files. */
  stack: Stack;
}

/** Slice positions closer than this (mm, along the normal) are the same position. */
export const SAME_POSITION_MM = 0.01;
/** Shear smaller than this (degrees) is rounding in the printed positions, not tilt. */
export const TILT_DEGREES = 0.01;

/** One stack → one plan, or several when acquisitions at the same positions do not form a regular 4D set. */
export function planStack(stack: Stack): StackPlan[] {
  const normal = stack.normal;
  const hasGeometry = normal !== undefined && stack.slices.every((s) => s.geom.position && s.geom.position.every(Number.isFinite));
  const slices = [...stack.slices].sort(
    (a, b) =>
      (hasGeometry ? a.d - b.d : 0) ||
      (a.geom.temporalPositionIndex ?? 0) - (b.geom.temporalPositionIndex ?? 0) ||
      (a.header.acquisitionNumber ?? 0) - (b.header.acquisitionNumber ?? 0) ||
      (a.header.instanceNumber ?? 0) - (b.header.instanceNumber ?? 0) ||
      a.object - b.object ||
      a.frame - b.frame,
  );
  const warnings: IoWarning[] = [...stack.warnings];
  // one object whose frames all carry the same (top-level) position: frames are slices, spaced by thickness
  const framesWithoutPositions = hasGeometry && slices.length > 1 && slices.every((s) => s.object === slices[0]!.object) && slices.every((s) => Math.abs(s.d - slices[0]!.d) < SAME_POSITION_MM) && slices.every((s) => s.geom.temporalPositionIndex === undefined);
  if (framesWithoutPositions) {
    warnings.push({ code: 'no_frame_positions', message: 'the frames of this multi-frame object share one position; they are stacked by SliceThickness' });
    return [finish(stack, slices.sort((a, b) => a.frame - b.frame), 1, [], warnings, 'thickness')];
  }
  if (!hasGeometry) {
    warnings.push({ code: 'no_geometry', message: 'ImagePositionPatient/ImageOrientationPatient are absent or invalid; slices are ordered by InstanceNumber on a plain grid' });
    return [finish(stack, slices, 1, [], warnings, 'none')];
  }

  // positions (within a tolerance) → the slices sharing each one
  const groups: SliceRecord[][] = [];
  for (const s of slices) {
    const last = groups.at(-1);
    if (last && Math.abs(last[0]!.d - s.d) < SAME_POSITION_MM) last.push(s);
    else groups.push([s]);
  }
  if (groups.every((g) => g.length === 1)) return [finish(stack, slices, 1, [], warnings, 'positions')];

  const oneObject = slices.every((s) => s.object === slices[0]!.object);
  const discriminators: [string, (s: SliceRecord) => number | undefined][] = [
    ['temporal position', (s) => s.geom.temporalPositionIndex],
    ['acquisition', (s) => s.header.acquisitionNumber],
    ['frame', (s) => (oneObject ? s.frame : undefined)],
  ];
  for (const [name, key] of discriminators) {
    if (!slices.every((s) => key(s) !== undefined)) continue;
    if (!groups.every((g) => new Set(g.map(key)).size === g.length)) continue;
    for (const g of groups) g.sort((a, b) => key(a)! - key(b)!);
    const counts = new Set(groups.map((g) => g.length));
    const sameSets = name === 'frame' || new Set(groups.map((g) => g.map(key).join())).size === 1;
    // a colour volume's 4th axis already holds the samples, so complete repeats split as partial ones do
    const colour = slices[0]!.header.samplesPerPixel === 3;
    if (counts.size === 1 && sameSets && !colour) {
      const nt = groups[0]!.length;
      const order: SliceRecord[] = [];
      for (let t = 0; t < nt; t++) for (const g of groups) order.push(g[t]!);
      return [finish(stack, order, nt, [], warnings, 'positions')];
    }
    if (name === 'frame' && !(colour && counts.size === 1)) break;
    // partial repeats (a re-scan of part of the volume, an incomplete time point), or colour repeats: one volume
    // per value (per repeat, for the frames of one object)
    const parts: SliceRecord[][] =
      name === 'frame'
        ? groups[0]!.map((_, t) => groups.map((g) => g[t]!))
        : [...new Set(slices.map(key))].sort((a, b) => a! - b!).map((v) => stack.slices.filter((s) => key(s) === v));
    const why = colour ? '; a colour volume has no axis left for them' : '';
    return parts.flatMap((part, i) => {
      const v = key(part[0]!);
      const label = name === 'frame' ? { repeat: i + 1 } : { [name === 'acquisition' ? 'acquisitionNumber' : 'temporalPositionIndex']: v };
      return planStack({
        ...stack,
        slices: part,
        warnings: [...stack.warnings, { code: 'series_split', message: `slices repeat at the same positions${why}; split by ${name} (${i + 1} of ${parts.length})`, details: { by: [name], part: i + 1, parts: parts.length, ...label } }],
      });
    });
  }
  // nothing tells same-position slices apart: keep the first, the rest must be pixel-identical copies
  const order = groups.map((g) => g[0]!);
  const twins = groups.flatMap((g, keep) => g.slice(1).map((slice) => ({ keep, slice })));
  const files = new Set(twins.map((t) => t.slice.object)).size;
  warnings.push({
    code: 'duplicate_slices',
    message: `${twins.length} slice(s) repeat a position already present; they hold the same pixels and are ignored`,
    details: { duplicates: twins.length, files },
  });
  return [finish(stack, order, 1, twins, warnings, 'positions')];
}

// --- internal ---

function finish(stack: Stack, order: SliceRecord[], nt: number, twins: StackPlan['twins'], warnings: IoWarning[], spacingFrom: 'positions' | 'thickness' | 'none'): StackPlan {
  const nz = order.length / nt;
  const first = order[0]!;
  const h = first.header;
  const g0 = first.geom;
  const ps: [number, number] = g0.pixelSpacing ?? [1, 1];
  if (!g0.pixelSpacing) warnings.push({ code: 'no_pixel_spacing', message: 'PixelSpacing is absent; 1 mm is assumed' });
  const thick = g0.sliceThickness && g0.sliceThickness > 0 ? g0.sliceThickness : 1;
  let irregular = false;
  let affine: Mat4;
  let geometry: StackPlan['geometry'];
  if (spacingFrom === 'none' || !stack.iop || !stack.normal) {
    affine = dicomAffine([1, 0, 0, 0, 1, 0], [0, 0, 0], ps, [0, 0, thick]);
  } else if (spacingFrom === 'thickness') {
    affine = dicomAffine(stack.iop, g0.position!, ps, scale(stack.normal, thick));
  } else {
    const zs = order.slice(0, nz);
    const d = zs.map((s) => s.d);
    const positions = zs.map((s) => s.geom.position!);
    geometry = { iop: stack.iop, normal: stack.normal, pixelSpacing: ps, d, positions };
    const p0 = positions[0]!;
    let step: Vec3;
    if (nz === 1) {
      step = scale(stack.normal, thick);
      warnings.push({ code: 'single_slice', message: `one slice; its thickness (${thick} mm) is used as the slice spacing`, details: { thickness: thick } });
    } else {
      step = scale(sub(positions[nz - 1]!, p0), 1 / (nz - 1));
      const diffs = d.slice(1).map((v, i) => v - d[i]!);
      const median = medianOf(diffs);
      const gaps = diffs.map((x) => Math.max(1, Math.round(x / median)));
      const missing = gaps.reduce((a, g) => a + g - 1, 0);
      if (missing > 0) {
        irregular = true;
        const where = gaps.flatMap((g, i) => (g > 1 ? [i] : []));
        warnings.push({ code: 'missing_slices', message: `${missing} slice(s) missing from a stack spaced ${round4(median)} mm (after slice index ${where.join(', ')})`, details: { missing, spacing: median, after: where } });
      }
      const worst = Math.max(...diffs.map((x, i) => Math.abs(x - gaps[i]! * median)));
      if (worst > Math.max(1e-3, 0.01 * median)) {
        irregular = true;
        warnings.push({ code: 'uneven_spacing', message: `slice spacing varies by up to ${round4(worst)} mm around ${round4(median)} mm`, details: { worstDeviation: worst, spacing: median } });
      }
      const along = sub(positions[nz - 1]!, p0);
      const tilt = (Math.acos(Math.min(1, Math.abs(dot(along, stack.normal)) / (norm(along) || 1))) * 180) / Math.PI;
      if (tilt > TILT_DEGREES) {
        irregular = true;
        const tag = h.gantryTilt !== undefined ? ` (GantryDetectorTilt ${h.gantryTilt}°)` : '';
        warnings.push({ code: 'gantry_tilt', message: `slice positions are sheared by ${round4(tilt)}° from the slice normal${tag}; the affine keeps the shear`, details: { degrees: tilt, ...(h.gantryTilt !== undefined ? { headerDegrees: h.gantryTilt } : {}) } });
      }
    }
    affine = dicomAffine(stack.iop, p0, ps, step);
  }
  if (h.gantryTilt && Math.abs(h.gantryTilt) > TILT_DEGREES && !warnings.some((w) => w.code === 'gantry_tilt')) {
    warnings.push({ code: 'gantry_tilt', message: `GantryDetectorTilt is ${h.gantryTilt}° but the slice positions show no shear`, details: { degrees: 0, headerDegrees: h.gantryTilt } });
  }
  if (h.photometric === 'MONOCHROME1' && !warnings.some((w) => w.code === 'monochrome1')) {
    warnings.push({ code: 'monochrome1', message: 'MONOCHROME1: low values display white; stored values are kept as they are' });
  }
  // planStack splits colour repeats into volumes of their own; reaching here with both would be a planning bug
  if (h.samplesPerPixel === 3 && nt > 1) throw new GatedError('internal', 'a colour stack was planned with a time axis');
  const r0 = order[0]!.geom.rescale;
  const uniform = order.every((s) => s.geom.rescale.slope === r0.slope && s.geom.rescale.intercept === r0.intercept);
  if (!uniform) warnings.push({ code: 'rescale_varies', message: 'RescaleSlope/Intercept differ between slices; each slice is rescaled and real values are stored as float32' });
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0]![c]!, affine[1]![c]!, affine[2]![c]!));
  if (nt > 1 || h.samplesPerPixel === 3) spacing.push(1);
  return { order, nz, nt, affine, spacing, geometry, twins, warnings, rescale: uniform ? { ...r0 } : undefined, irregular, stack };
}

export function medianOf(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function round4(x: number): string {
  return String(Math.round(x * 1e4) / 1e4);
}
