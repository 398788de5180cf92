/**
 * Regular grid from an irregular stack (missing slices, uneven spacing, gantry tilt), as dcm2niix's _Eq
 * and _Tilt outputs do: output slices are spaced by the median step along the true slice normal,
 * starting at the first acquired slice; each output voxel takes its value from the two acquired slices
 * that bracket it along the normal (linear weights), each sampled in-plane at the voxel's own world
 * position (bilinear), which undoes the tilt's in-plane shift. Output voxels that fall outside every
 * acquired slice get the volume's minimum (air in CT, background in MR), not an invented value.
 */
import { GatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import { axisCodes, dicomAffine, dot, scale, sub, type Vec3 } from '../geometry.ts';
import { realValues, type Volume } from '../volume.ts';
import { medianOf, type StackPlan } from './series.ts';

export function resampleStack(v: Volume, plan: StackPlan, limits: Limits): Volume {
  const geo = plan.geometry;
  if (!geo || plan.nz < 2) return v;
  const [nx = 1, ny = 1, nz = 1, nb = 1] = v.shape;
  const { iop, normal, pixelSpacing, d, positions } = geo;
  const rowDir: Vec3 = [iop[0], iop[1], iop[2]];
  const colDir: Vec3 = [iop[3], iop[4], iop[5]];
  const [rowSp, colSp] = pixelSpacing;
  const step = medianOf(d.slice(1).map((x, i) => x - d[i]!));
  const nzOut = Math.round((d.at(-1)! - d[0]!) / step) + 1;
  const n2 = nx * ny;
  const bytes = n2 * nzOut * nb * 4;
  if (!Number.isSafeInteger(bytes) || bytes > limits.maxVoxelBytes) {
    throw new GatedError('too_large', `resampling would need ${bytes} bytes; the limit is ${limits.maxVoxelBytes}`, { details: { slices: nzOut } });
  }
  const real = realValues(v);
  let fill = Infinity;
  for (let i = 0; i < real.length; i++) if (real[i]! < fill) fill = real[i]!;
  const out = new Float32Array(n2 * nzOut * nb).fill(fill);
  const p0 = positions[0]!;
  let s = 0;
  for (let k = 0; k < nzOut; k++) {
    const target = d[0]! + k * step;
    while (s + 2 < d.length && d[s + 1]! < target) s++;
    const d0 = d[s]!;
    const d1 = d[s + 1]!;
    const w1 = Math.min(1, Math.max(0, (target - d0) / (d1 - d0)));
    // world origin of output slice k: the first slice's origin moved along the true normal
    const origin = [0, 1, 2].map((a) => p0[a]! + normal[a]! * (target - d[0]!));
    const taps: [number, number][] = w1 === 0 ? [[s, 1]] : w1 === 1 ? [[s + 1, 1]] : [[s, 1 - w1], [s + 1, w1]];
    const acc = new Float64Array(n2);
    const wsum = new Float64Array(n2);
    for (let b = 0; b < nb; b++) {
      acc.fill(0);
      wsum.fill(0);
      for (const [slice, w] of taps) {
        // in-plane offset (in voxels) of output voxel (0,0) within acquired slice `slice`
        const off = sub(origin, positions[slice]!);
        sampleInto(acc, wsum, real, (b * nz + slice) * n2, nx, ny, snap(dot(off, rowDir) / colSp), snap(dot(off, colDir) / rowSp), w);
      }
      const base = (b * nzOut + k) * n2;
      // a voxel seen by only one of the two slices (edge of a tilted slab) takes that slice's value
      for (let p = 0; p < n2; p++) if (wsum[p]! > 0) out[base + p] = acc[p]! / wsum[p]!;
    }
  }
  const affine = dicomAffine(iop, p0, pixelSpacing, scale(normal, step));
  const rgb = v.meta.components === 'rgb';
  const data = rgb ? Uint8Array.from(out, (x) => Math.max(0, Math.min(255, Math.round(x)))) : out;
  const spacing = [colSp, rowSp, step, ...v.spacing.slice(3)];
  const { rescale: _dropped, sopInstanceUIDs: _notSlices, ...meta } = v.meta;
  return {
    data,
    dtype: rgb ? 'uint8' : 'float32',
    shape: [nx, ny, nzOut, ...v.shape.slice(3)],
    spacing,
    affine,
    meta: {
      ...meta,
      orientation: axisCodes(affine),
      warnings: [
        ...v.meta.warnings,
        { code: 'resampled', message: `resampled onto a regular grid: ${nzOut} slices ${Math.round(step * 1e4) / 1e4} mm apart along the slice normal (acquired: ${nz})`, details: { slices: nzOut, acquired: nz, spacing: step } },
      ],
    },
  };
}

// --- internal ---

/** Offsets within a micron of a whole voxel are that voxel: an untilted stack is copied, not blurred. */
function snap(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - r) < 1e-6 ? r : x;
}

function sampleInto(acc: Float64Array, wsum: Float64Array, src: Float64Array, srcBase: number, nx: number, ny: number, di: number, dj: number, w: number): void {
  const fi = Math.floor(di);
  const fj = Math.floor(dj);
  const ai = di - fi;
  const aj = dj - fj;
  const taps: [number, number, number][] = [
    [0, 0, (1 - ai) * (1 - aj)],
    [1, 0, ai * (1 - aj)],
    [0, 1, (1 - ai) * aj],
    [1, 1, ai * aj],
  ];
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      let a = 0;
      let ws = 0;
      for (const [ox, oy, ww] of taps) {
        const x = i + fi + ox;
        const y = j + fj + oy;
        if (ww === 0 || x < 0 || y < 0 || x >= nx || y >= ny) continue;
        a += src[srcBase + x + nx * y]! * ww;
        ws += ww;
      }
      // partial in-plane support (edge pixels) is renormalised; none at all leaves the voxel unseen
      if (ws > 0) {
        acc[i + nx * j] = acc[i + nx * j]! + (a / ws) * w;
        wsum[i + nx * j] = wsum[i + nx * j]! + w;
      }
    }
  }
}
