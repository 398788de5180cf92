/**
 * Regular grid from an irregular stack (missing slices, uneven spacing, gantry tilt), as dcm2niix does:
 * output slices are spaced by the median step along the true slice normal; each output voxel takes its
 * value from the two acquired slices that bracket it along the normal (linear weights), each sampled
 * in-plane at the voxel's world position (bilinear, which undoes the tilt's in-plane shift).
 */
import { axisVector, cross, dicomAffine, dot, norm, scale, sub, type Vec3 } from '../geometry.ts';
import type { Volume } from '../volume.ts';
import type { StackPlan } from './series.ts';

export function resampleStack(v: Volume, plan: StackPlan): Volume {
  const [nx = 1, ny = 1] = v.shape;
  if (v.meta.components === 'rgb' || plan.nt > 1 || plan.nz < 2) return v;
  const g0 = plan.order[0]!.geom;
  const o = g0.orientation!;
  const rowDir: Vec3 = [o[0], o[1], o[2]];
  const colDir: Vec3 = [o[3], o[4], o[5]];
  const normal = cross(rowDir, colDir);
  const [rowSp, colSp] = g0.pixelSpacing ?? [1, 1];
  const d = plan.d;
  const diffs = d.slice(1).map((x, i) => x - d[i]!).sort((a, b) => a - b);
  const step = diffs[Math.floor(diffs.length / 2)]!;
  const nzOut = Math.round((d.at(-1)! - d[0]!) / step) + 1;
  const p0 = g0.position!;
  const positions = plan.order.map((s) => s.geom.position!);
  const n2 = nx * ny;
  const out = new Float32Array(n2 * nzOut);
  const r = v.meta.rescale;
  const slope = r?.slope ?? 1;
  const inter = r?.intercept ?? 0;
  const src = v.data;
  let s = 0;
  for (let k = 0; k < nzOut; k++) {
    const target = d[0]! + k * step;
    while (s + 2 < d.length && d[s + 1]! < target) s++;
    const d0 = d[s]!;
    const d1 = d[s + 1] ?? d0;
    const w1 = d1 > d0 ? Math.min(1, Math.max(0, (target - d0) / (d1 - d0))) : 0;
    // world origin of output slice k: the first slice's origin moved along the true normal
    const origin = [p0[0] + normal[0] * (target - d[0]!), p0[1] + normal[1] * (target - d[0]!), p0[2] + normal[2] * (target - d[0]!)];
    for (const [slice, w] of [[s, 1 - w1], [s + 1, w1]] as const) {
      if (w === 0 || slice >= d.length) continue;
      // in-plane offset (in voxels) of output voxel (0,0) within acquired slice `slice`
      const off = sub(origin, positions[slice]!);
      const di = dot(off, rowDir) / colSp;
      const dj = dot(off, colDir) / rowSp;
      sampleInto(out, k * n2, src, slice * n2, nx, ny, di, dj, w, slope, inter);
    }
  }
  const affine = dicomAffine(o, p0, [rowSp, colSp], scale(normal, step));
  return {
    ...v,
    data: out,
    dtype: 'float32',
    shape: [nx, ny, nzOut],
    spacing: [norm(axisVector(affine, 0)), norm(axisVector(affine, 1)), step],
    affine,
    meta: {
      ...v.meta,
      rescale: undefined,
      sopInstanceUIDs: undefined,
      warnings: [...v.meta.warnings, { code: 'resampled', message: `resampled onto a regular grid: ${nzOut} slices, ${step.toFixed(4)} mm apart along the slice normal` }],
    },
  };
}

function sampleInto(out: Float32Array, outBase: number, src: ArrayLike<number>, srcBase: number, nx: number, ny: number, di: number, dj: number, w: number, slope: number, inter: number): void {
  const fi = Math.floor(di);
  const fj = Math.floor(dj);
  const ai = di - fi;
  const aj = dj - fj;
  for (let j = 0; j < ny; j++) {
    const y0 = j + fj;
    for (let i = 0; i < nx; i++) {
      const x0 = i + fi;
      let acc = 0;
      let wsum = 0;
      for (const [x, y, ww] of [[x0, y0, (1 - ai) * (1 - aj)], [x0 + 1, y0, ai * (1 - aj)], [x0, y0 + 1, (1 - ai) * aj], [x0 + 1, y0 + 1, ai * aj]] as const) {
        if (ww === 0 || x < 0 || y < 0 || x >= nx || y >= ny) continue;
        acc += (src[srcBase + x + nx * y]! * slope + inter) * ww;
        wsum += ww;
      }
      // outside the acquired slice there is nothing to interpolate from: leave the background (0)
      if (wsum > 0) out[outBase + i + nx * j] = out[outBase + i + nx * j]! + (acc / wsum) * w;
    }
  }
}
