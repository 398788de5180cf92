/**
 * A stack of slices → one Volume: sorted along the slice normal by ImagePositionPatient, spacing from
 * positions (never SliceThickness), the affine from the first slice and the mean step, and every
 * irregularity reported: gantry tilt, uneven spacing, missing and duplicate slices, varying rescale.
 */
import { GatedError } from '../../core/errors.ts';
import { dicomAffine, dot, norm, scale, sub, type Vec3 } from '../geometry.ts';
import type { IoWarning } from '../volume.ts';
import type { SliceRecord, Stack } from './group.ts';

export interface StackPlan {
  /** Slices in volume order: index k (and, for 4D, t-major blocks of nz). */
  order: SliceRecord[];
  nz: number;
  nt: number;
  affine: number[][];
  spacing: number[];
  /** Along-normal positions of the kept slices (for resampling). */
  d: number[];
  warnings: IoWarning[];
  /** Uniform modality LUT, or undefined when it varies between slices. */
  rescale: { slope: number; intercept: number } | undefined;
  irregular: boolean;
}

const TILT_DEGREES = 0.01;

export function planStack(stack: Stack): StackPlan {
  const warnings: IoWarning[] = [];
  const first = stack.slices[0]!;
  const h = first.header;
  const hasGeometry = stack.normal !== undefined && stack.slices.every((s) => s.geom.position && s.geom.orientation);
  let slices = [...stack.slices];
  if (hasGeometry) {
    slices.sort((a, b) => a.d - b.d || (a.geom.temporalPositionIndex ?? 0) - (b.geom.temporalPositionIndex ?? 0) || (a.header.instanceNumber ?? 0) - (b.header.instanceNumber ?? 0) || a.object - b.object || a.frame - b.frame);
  }
  // positions (grouped within a tolerance) → how many slices share each one
  const groups: SliceRecord[][] = [];
  for (const s of slices) {
    const last = groups.at(-1);
    if (hasGeometry && last && Math.abs(last[0]!.d - s.d) < 1e-3) last.push(s);
    else groups.push([s]);
  }
  let nt = 1;
  if (hasGeometry && groups.length > 1 && groups.every((g) => g.length === groups[0]!.length) && groups[0]!.length > 1) {
    nt = groups[0]!.length; // a time series / multi-volume acquisition: same positions repeated
  } else if (groups.some((g) => g.length > 1)) {
    const dup = groups.filter((g) => g.length > 1).length;
    warnings.push({ code: 'duplicate_slices', message: `${dup} slice position(s) occur more than once; the first of each is kept`, details: { positions: dup } });
    for (const g of groups) g.splice(1);
  }
  const nz = groups.length;
  const order: SliceRecord[] = [];
  for (let t = 0; t < nt; t++) for (const g of groups) order.push(g[t]!);
  const d = groups.map((g) => g[0]!.d);

  const g0 = first.geom;
  const ps = g0.pixelSpacing ?? [1, 1];
  if (!g0.pixelSpacing) warnings.push({ code: 'no_pixel_spacing', message: 'PixelSpacing is absent; 1 mm is assumed' });
  let affine: number[][];
  let irregular = false;
  if (!hasGeometry) {
    warnings.push({ code: 'no_geometry', message: 'ImagePositionPatient/ImageOrientationPatient are absent; the affine is a plain grid' });
    const thick = g0.sliceThickness ?? 1;
    affine = dicomAffine([1, 0, 0, 0, 1, 0], [0, 0, 0], ps, [0, 0, thick]);
  } else {
    const p0 = groups[0]![0]!.geom.position!;
    const pN = groups[nz - 1]![0]!.geom.position!;
    let step: Vec3;
    if (nz === 1) {
      const thick = g0.sliceThickness && g0.sliceThickness > 0 ? g0.sliceThickness : 1;
      step = scale(stack.normal!, thick);
      warnings.push({ code: 'single_slice', message: `one slice; its thickness (${thick} mm) is used as the slice spacing` });
    } else {
      step = scale(sub(pN, p0), 1 / (nz - 1));
      const diffs = d.slice(1).map((v, i) => v - d[i]!);
      const sorted = [...diffs].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      if (median <= 1e-6) throw new GatedError('series_inconsistent', 'slices do not advance along the slice normal');
      const gaps = diffs.map((x) => Math.round(x / median));
      const missing = gaps.reduce((a, g) => a + Math.max(0, g - 1), 0);
      if (missing > 0) {
        irregular = true;
        warnings.push({ code: 'missing_slices', message: `${missing} slice(s) missing from a stack spaced ${median.toFixed(4)} mm`, details: { missing, spacing: median } });
      }
      const worst = Math.max(...diffs.map((x, i) => Math.abs(x - gaps[i]! * median)));
      if (worst > Math.max(1e-3, 0.01 * median)) {
        irregular = true;
        warnings.push({ code: 'uneven_spacing', message: `slice spacing varies by up to ${worst.toFixed(4)} mm around ${median.toFixed(4)} mm`, details: { worstDeviation: worst } });
      }
      const along = sub(pN, p0);
      const cosang = Math.abs(dot(along, stack.normal!)) / (norm(along) || 1);
      const tilt = (Math.acos(Math.min(1, cosang)) * 180) / Math.PI;
      if (tilt > TILT_DEGREES) {
        irregular = true;
        warnings.push({ code: 'gantry_tilt', message: `slices are sheared by ${tilt.toFixed(3)}° (gantry tilt${h.gantryTilt ? ` ${h.gantryTilt}° in the header` : ''}); the affine keeps the shear`, details: { degrees: tilt } });
      }
    }
    affine = dicomAffine(g0.orientation!, p0, ps, step);
  }
  if (h.gantryTilt && Math.abs(h.gantryTilt) > TILT_DEGREES && !warnings.some((w) => w.code === 'gantry_tilt')) {
    warnings.push({ code: 'gantry_tilt', message: `GantryDetectorTilt is ${h.gantryTilt}° but the slice positions show no shear`, details: { degrees: h.gantryTilt } });
  }
  const r0 = order[0]!.geom.rescale;
  const uniform = order.every((s) => s.geom.rescale.slope === r0.slope && s.geom.rescale.intercept === r0.intercept);
  if (!uniform) warnings.push({ code: 'rescale_varies', message: 'RescaleSlope/Intercept differ between slices; real values are stored as float32' });
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0]![c]!, affine[1]![c]!, affine[2]![c]!));
  if (nt > 1) spacing.push(1);
  return { order, nz, nt, affine, spacing, d, warnings, rescale: uniform ? r0 : undefined, irregular };
}
