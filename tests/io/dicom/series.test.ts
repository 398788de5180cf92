/**
 * Series assembly on synthetic parsed objects: the expected geometry comes from the DICOM definition of
 * a pixel's position (PS3.3 C.7.6.2.1.1: P = IPP + column·Δc·row + row·Δr·col, in LPS) applied to the
 * positions the test chose, and pixel values encode their source slice, row and column.
 */
import { describe, expect, it } from 'vitest';
import { applyAffine, type Vec3 } from '../../../io/geometry.ts';
import { assembleSeries } from '../../../io/dicom/read_items.ts';
import type { ObjectSource } from '../../../io/dicom/stack.ts';
import { realValues, type Volume } from '../../../io/volume.ts';
import { along, AXIAL, limits, multiFrame, shuffle, slice, type SliceSpec } from './series_fixtures.ts';

const ctx = { limits };
const codes = (v: Volume) => v.meta.warnings.map((w) => w.code).sort();
const ras = (p: readonly number[]): Vec3 => [-p[0]!, -p[1]!, p[2]!];

/** Rotation about a unit axis (Rodrigues); columns are the rotated x, y, z axes. */
function rotation(axis: Vec3, deg: number): [Vec3, Vec3, Vec3] {
  const n = Math.hypot(...axis);
  const [x, y, z] = axis.map((v) => v / n) as Vec3;
  const t = (deg * Math.PI) / 180;
  const c = Math.cos(t);
  const s = Math.sin(t);
  const C = 1 - c;
  const m = [
    [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
    [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
    [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
  ];
  const col = (j: number): Vec3 => [m[0]![j]!, m[1]![j]!, m[2]![j]!];
  return [col(0), col(1), col(2)];
}

/** World (LPS) of pixel (row r, column c) of a slice at `ipp`: the DICOM definition. */
function dicomWorld(ipp: Vec3, row: Vec3, col: Vec3, ps: [number, number], r: number, c: number): Vec3 {
  return [0, 1, 2].map((a) => ipp[a]! + c * ps[1] * row[a]! + r * ps[0] * col[a]!) as Vec3;
}

function stackOf(positions: Vec3[], extra: (k: number) => Partial<SliceSpec> = () => ({})): ObjectSource[] {
  return positions.map((position, k) => slice({ position, tag: k, instance: k + 1, ...extra(k) }));
}

async function one(sources: ObjectSource[], resample = false): Promise<Volume> {
  const res = await assembleSeries(sources, { limits, resample });
  expect(res.rejected).toEqual([]);
  expect(res.volumes).toHaveLength(1);
  return res.volumes[0]!;
}

/** Slice tag stored in voxel (0,0,k). */
function tags(v: Volume): number[] {
  const [nx = 1, ny = 1, nz = 1] = v.shape;
  return Array.from({ length: nz }, (_, k) => Math.floor((v.data[k * nx * ny] as number) / 1000));
}

describe('sorting and geometry', () => {
  const [row, col, normal] = rotation([0.2, 0.3, 0.93], 23);
  const iop = [...row, ...col] as [number, number, number, number, number, number];
  const ps: [number, number] = [0.8, 1.3];
  const p0: Vec3 = [-40, 12, 7];
  const positions = along(p0, normal, 2.5, [0, 1, 2, 3, 4, 5, 6]);

  it('shuffled files come out sorted along the normal; every voxel sits where DICOM says its pixel is', async () => {
    const files = shuffle(stackOf(positions, () => ({ orientation: iop, pixelSpacing: ps, thickness: 5 })));
    const v = await one(files);
    expect(v.shape).toEqual([3, 4, 7]);
    expect(tags(v)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    // layout: frame row-major (r*cols + c) → x = column, y = row
    for (let k = 0; k < 7; k++) for (let r = 0; r < 4; r++) for (let c = 0; c < 3; c++) expect(v.data[c + 3 * (r + 4 * k)]).toBe(k * 1000 + r * 3 + c);
    for (let k = 0; k < 7; k++) {
      for (const [r, c] of [[0, 0], [3, 2], [1, 2]] as const) {
        const want = ras(dicomWorld(positions[k]!, row, col, ps, r, c));
        const got = applyAffine(v.affine, [c, r, k]);
        for (let a = 0; a < 3; a++) expect(got[a]).toBeCloseTo(want[a]!, 9);
      }
    }
    // spacing from positions, not the 5 mm SliceThickness
    expect(v.spacing.map((s) => +s.toFixed(9))).toEqual([1.3, 0.8, 2.5]);
    expect(v.meta.warnings).toEqual([]);
    expect(v.meta.sopInstanceUIDs).toEqual([0, 1, 2, 3, 4, 5, 6].map((k) => files.find((f) => f.header.frames[0]!.position === positions[k])!.header.sopInstanceUID));
  });

  it('slices acquired against the normal (descending positions) are ordered by position, not by file or instance', async () => {
    const v = await one(stackOf([...positions].reverse(), () => ({ orientation: iop, pixelSpacing: ps })));
    expect(tags(v)).toEqual([6, 5, 4, 3, 2, 1, 0]);
    const got = applyAffine(v.affine, [0, 0, 0]);
    const want = ras(positions[0]!);
    for (let a = 0; a < 3; a++) expect(got[a]).toBeCloseTo(want[a]!, 9);
  });

  it('a clean stack raises no warning; each defect raises exactly its own', async () => {
    const axial = (ks: number[]) => along([0, 0, 0], [0, 0, 1], 2, ks);
    expect(codes(await one(stackOf(axial([0, 1, 2, 3, 4, 5]))))).toEqual([]);
    const missing = await one(stackOf(axial([0, 1, 2, 4, 5, 6])));
    expect(codes(missing)).toEqual(['missing_slices']);
    expect(missing.meta.warnings[0]!.details).toMatchObject({ missing: 1, after: [2] });
    const uneven = axial([0, 1, 2, 3, 4, 5]).map((p, k): Vec3 => [p[0], p[1], p[2] + (k >= 3 ? 0.7 : 0)]);
    expect(codes(await one(stackOf(uneven)))).toEqual(['uneven_spacing']);
    // tilt: each slice shifted 0.5 mm along the column direction per 2 mm step → atan(0.25)
    const tilted = axial([0, 1, 2, 3, 4, 5]).map((p, k): Vec3 => [p[0], p[1] + 0.5 * k, p[2]]);
    const t = await one(stackOf(tilted, () => ({ gantryTilt: 14 })));
    expect(codes(t)).toEqual(['gantry_tilt']);
    expect(t.meta.warnings[0]!.details!.degrees as number).toBeCloseTo((Math.atan(0.25) * 180) / Math.PI, 9);
    // without resampling the affine keeps the shear: voxel (0,0,k) is at slice k's position
    tilted.forEach((p, k) => expect(applyAffine(t.affine, [0, 0, k])).toEqual(ras(p).map((x) => expect.closeTo(x, 9))));
    // the header tag alone (positions unsheared) is still reported
    expect(codes(await one(stackOf(axial([0, 1, 2]), () => ({ gantryTilt: 10 }))))).toEqual(['gantry_tilt']);
    expect(codes(await one(stackOf(axial([0]), () => ({ thickness: 3 }))))).toEqual(['single_slice']);
    expect(codes(await one(stackOf(axial([0, 1, 2]), () => ({ photometric: 'MONOCHROME1' }))))).toEqual(['monochrome1']);
  });

  it('single slice: spacing is its thickness along the normal', async () => {
    const v = await one([slice({ position: [1, 2, 3], orientation: iop, thickness: 3 })]);
    expect(v.shape).toEqual([3, 4, 1]);
    const z = applyAffine(v.affine, [0, 0, 1]);
    const want = ras([1 + 3 * normal[0], 2 + 3 * normal[1], 3 + 3 * normal[2]]);
    for (let a = 0; a < 3; a++) expect(z[a]).toBeCloseTo(want[a]!, 9);
  });
});

describe('duplicates and repeated positions', () => {
  const pos = along([0, 0, 0], [0, 0, 1], 3, [0, 1, 2, 3]);

  it('identical copies (same or new SOPInstanceUID) are dropped with one warning', async () => {
    const base = stackOf(pos);
    const copies = [slice({ position: pos[1]!, tag: 1, sop: base[1]!.header.sopInstanceUID! }), slice({ position: pos[2]!, tag: 2 })];
    const v = await one([...base, ...copies]);
    expect(v.shape).toEqual([3, 4, 4]);
    expect(tags(v)).toEqual([0, 1, 2, 3]);
    expect(codes(v)).toEqual(['duplicate_slices']);
  });

  it('same position, different pixels, nothing to tell them apart: series_inconsistent', async () => {
    const res = await assembleSeries([...stackOf(pos), slice({ position: pos[2]!, tag: 9 })], ctx);
    expect(res.volumes).toEqual([]);
    expect(new Set(res.rejected.map((r) => r.code))).toEqual(new Set(['series_inconsistent']));
    expect(res.rejected).toHaveLength(5);
  });

  it('two complete acquisitions at the same positions become a 4th axis in acquisition order', async () => {
    const files = shuffle([...stackOf(pos, (k) => ({ acquisition: 2, tag: 10 + k })), ...stackOf(pos, (k) => ({ acquisition: 1, tag: k }))]);
    const v = await one(files);
    expect(v.shape).toEqual([3, 4, 4, 2]);
    expect(Array.from({ length: 8 }, (_, s) => Math.floor((v.data[s * 12] as number) / 1000))).toEqual([0, 1, 2, 3, 10, 11, 12, 13]);
    expect(codes(v)).toEqual([]);
  });

  it('a partial second acquisition splits into its own volume, each labelled', async () => {
    const res = await assembleSeries([...stackOf(pos, () => ({ acquisition: 1 })), ...stackOf(pos.slice(0, 2), (k) => ({ acquisition: 2, tag: 20 + k }))], ctx);
    expect(res.volumes.map((v) => v.shape)).toEqual([[3, 4, 4], [3, 4, 2]]);
    expect(res.series.map((s) => s.warnings.find((w) => w.code === 'series_split')!.details)).toEqual([
      expect.objectContaining({ by: ['acquisition'], acquisitionNumber: 1 }),
      expect.objectContaining({ by: ['acquisition'], acquisitionNumber: 2 }),
    ]);
    expect(res.series.map((s) => s.files)).toEqual([4, 2]);
  });
});

describe('splitting one series', () => {
  const pos = along([0, 0, 0], [0, 0, 1], 2, [0, 1, 2]);

  it('by image size, by orientation beyond the tolerance, by echo; not by orientation noise', async () => {
    const bySize = await assembleSeries([...stackOf(pos), ...stackOf(pos, () => ({ rows: 5, cols: 6 }))], ctx);
    expect(bySize.volumes.map((v) => v.shape)).toEqual([[3, 4, 3], [6, 5, 3]]);
    const parts = bySize.series.map((s) => s.warnings.find((w) => w.code === 'series_split')!.details!);
    expect(parts.map((d) => [d.part, d.by])).toEqual([[1, ['image size']], [2, ['image size']]]);

    const noisy: [number, number, number, number, number, number] = [1, 2e-4, 0, -2e-4, 1, 0];
    const same = await assembleSeries(stackOf(pos, (k) => ({ orientation: k === 1 ? noisy : AXIAL })), ctx);
    expect(same.volumes).toHaveLength(1);
    const c = Math.cos(0.1);
    const s = Math.sin(0.1);
    const turned: [number, number, number, number, number, number] = [c, s, 0, -s, c, 0];
    const byOrient = await assembleSeries([...stackOf(pos), ...stackOf(pos, () => ({ orientation: turned }))], ctx);
    expect(byOrient.volumes).toHaveLength(2);
    expect(byOrient.series[1]!.warnings.find((w) => w.code === 'series_split')!.details!.by).toEqual(['orientation']);

    const byEcho = await assembleSeries([...stackOf(pos, () => ({ echo: 1 })), ...stackOf(pos, (k) => ({ echo: 2, tag: 5 + k }))], ctx);
    expect(byEcho.volumes.map((v) => tags(v))).toEqual([[0, 1, 2], [5, 6, 7]]);
    expect(byEcho.series.map((x) => x.warnings.find((w) => w.code === 'series_split')!.details!.echoNumber)).toEqual([1, 2]);
  });

  it('different SeriesInstanceUIDs never mix, and carry their own UIDs', async () => {
    const res = await assembleSeries([...stackOf(pos, () => ({ series: '9.1' })), ...stackOf(pos, () => ({ series: '9.2' }))], ctx);
    expect(res.volumes.map((v) => v.meta.seriesInstanceUID)).toEqual(['9.1', '9.2']);
    expect(res.series.every((s) => s.warnings.length === 0)).toBe(true);
  });
});

describe('modality LUT', () => {
  const pos = along([0, 0, 0], [0, 0, 1], 2, [0, 1, 2]);
  const real = (v: Volume) => Array.from(realValues(v));
  const expected = (r: { slope: number; intercept: number }[], value: (k: number, i: number) => number) =>
    Array.from({ length: 36 }, (_, n) => value(Math.floor(n / 12), n % 12) * r[Math.floor(n / 12)]!.slope + r[Math.floor(n / 12)]!.intercept);

  it('slope 1 and integer intercept are applied losslessly (same type if it fits, else the signed widening)', async () => {
    const ct = await one(stackOf(pos, () => ({ rescale: { slope: 1, intercept: -1024 } })));
    expect(ct.dtype).toBe('int16');
    expect(ct.meta.rescale).toBeUndefined();
    expect(real(ct)).toEqual(expected([0, 1, 2].map(() => ({ slope: 1, intercept: -1024 })), (k, i) => k * 1000 + i));
    const high = await one(stackOf(pos, () => ({ rescale: { slope: 1, intercept: 10 }, value: (r, c) => 32760 + r + c })));
    expect(high.dtype).toBe('int32');
    expect(real(high).slice(0, 3)).toEqual([32770, 32771, 32772]);
    const unsigned = await one(stackOf(pos, () => ({ dtype: 'uint16', rescale: { slope: 1, intercept: -1024 }, value: (r, c) => 60000 + r * 3 + c })));
    expect(unsigned.dtype).toBe('int32');
    expect(real(unsigned)[11]).toBe(60000 + 11 - 1024);
  });

  it('other uniform LUTs stay exact: stored integers plus meta.rescale', async () => {
    const v = await one(stackOf(pos, () => ({ rescale: { slope: 2.5, intercept: -7.25 } })));
    expect(v.dtype).toBe('int16');
    expect(v.meta.rescale).toEqual({ slope: 2.5, intercept: -7.25 });
    expect(real(v)).toEqual(expected([0, 1, 2].map(() => ({ slope: 2.5, intercept: -7.25 })), (k, i) => k * 1000 + i));
  });

  it('per-slice LUTs are applied slice by slice into float32 and reported', async () => {
    const rs = [{ slope: 1, intercept: 0 }, { slope: 0.5, intercept: 3 }, { slope: 2, intercept: -8 }];
    const v = await one(stackOf(pos, (k) => ({ rescale: rs[k]! })));
    expect(v.dtype).toBe('float32');
    expect(codes(v)).toEqual(['rescale_varies']);
    expect(real(v)).toEqual(expected(rs, (k, i) => k * 1000 + i));
  });
});

describe('resampling irregular stacks (ctx.resample)', () => {
  // stored value = a linear function of the LPS world position: linear and bilinear interpolation
  // reproduce it exactly, so every resampled voxel can be checked against the function at its centre
  const f = (p: readonly number[]) => 10 * p[0]! + 20 * p[1]! + 5 * p[2]!;
  const ps: [number, number] = [1, 1];
  const rows = 12;
  const cols = 10;
  function build(positions: Vec3[]): ObjectSource[] {
    return positions.map((ipp, k) => slice({ position: ipp, rows, cols, pixelSpacing: ps, instance: k, value: (r, c) => f(dicomWorld(ipp, [1, 0, 0], [0, 1, 0], ps, r, c)) }));
  }
  function checkAgainstF(v: Volume, margin: number): number {
    const [nx = 1, ny = 1, nz = 1] = v.shape;
    let checked = 0;
    for (let k = 0; k < nz; k++) for (let j = margin; j < ny - margin; j++) for (let i = 0; i < nx; i++) {
      const w = applyAffine(v.affine, [i, j, k]);
      expect(Math.abs((v.data[i + nx * (j + ny * k)] as number) - f(ras(w))), `voxel ${i},${j},${k}`).toBeLessThan(1e-3);
      checked++;
    }
    return checked;
  }

  it('missing slice: a regular grid through every acquired position; the gap interpolated', async () => {
    const positions = along([5, -3, 10], [0, 0, 1], 2, [0, 1, 2, 4, 5]);
    const v = await one(build(positions), true);
    expect(v.shape).toEqual([cols, rows, 6]);
    expect(codes(v)).toEqual(['missing_slices', 'resampled']);
    // each acquired slice's position is the origin of one output slice
    positions.forEach((p, n) => {
      const k = [0, 1, 2, 4, 5][n]!;
      const got = applyAffine(v.affine, [0, 0, k]);
      for (let a = 0; a < 3; a++) expect(got[a]).toBeCloseTo(ras(p)[a]!, 9);
    });
    expect(checkAgainstF(v, 0)).toBe(cols * rows * 6);
    const unresampled = await one(build(positions));
    expect(unresampled.shape).toEqual([cols, rows, 5]);
    expect(codes(unresampled)).toEqual(['missing_slices']);
  });

  it('uneven spacing: median step, values follow the acquired data linearly', async () => {
    const positions: Vec3[] = [0, 2, 4, 6.8, 8.8, 10.8].map((z) => [0, 0, z]);
    const v = await one(build(positions), true);
    expect(v.spacing[2]).toBeCloseTo(2, 9);
    expect(v.shape[2]).toBe(6);
    expect(checkAgainstF(v, 0)).toBe(cols * rows * 6);
  });

  it('gantry tilt: de-sheared onto the true normal; in-plane shifts of fractional pixels interpolated', async () => {
    // 0.5 mm shift along the column direction per 2 mm slice step (14.04°)
    const positions: Vec3[] = [0, 1, 2, 3, 4, 5].map((k) => [0, 0.5 * k, 2 * k]);
    const v = await one(build(positions), true);
    expect(codes(v)).toEqual(['gantry_tilt', 'resampled']);
    // the output affine has no shear: slice axis along the normal
    expect([v.affine[0]![2], v.affine[1]![2], v.affine[2]![2]]).toEqual([expect.closeTo(0, 12), expect.closeTo(0, 12), expect.closeTo(2, 12)]);
    // rows that every tilted slice still covers (2.5 mm shift over the slab → 3 rows of margin)
    expect(checkAgainstF(v, 3)).toBeGreaterThan(cols * (rows - 6) * 6 - 1);
  });
});

describe('multi-frame, colour, failures, limits', () => {
  it('enhanced multi-frame: per-frame positions sorted; temporal positions become the 4th axis', async () => {
    const frames = [2, 0, 1, 2, 0, 1].map((z, f) => ({ position: [0, 0, 4 * z] as Vec3, orientation: AXIAL, pixelSpacing: [1, 1] as [number, number], rescale: { slope: 1, intercept: 0 }, temporalPositionIndex: f < 3 ? 2 : 1 }));
    const obj = multiFrame(frames, 2, 3, (f) => f * 100);
    const v = await one([obj]);
    expect(v.shape).toEqual([3, 2, 3, 2]);
    // (z, t) → source frame: t=1 frames 4,5,3 (z 0,1,2); t=2 frames 1,2,0
    expect(Array.from({ length: 6 }, (_, s) => v.data[s * 6])).toEqual([400, 500, 300, 100, 200, 0]);
    expect(v.spacing.slice(0, 3)).toEqual([1, 1, 4]);
    expect(v.meta.sopInstanceUIDs).toEqual([0, 1, 2].map(() => obj.header.sopInstanceUID));
  });

  it('colour: samples become the planar 4th axis', async () => {
    const frames = [0, 1].map((z) => ({ position: [0, 0, z] as Vec3, orientation: AXIAL, pixelSpacing: [1, 1] as [number, number], rescale: { slope: 1, intercept: 0 } }));
    const v = await one([multiFrame(frames, 2, 3, (f, r, c) => 10 * f + 3 * r + c, 3)]);
    expect(v.shape).toEqual([3, 2, 2, 3]);
    expect(v.meta.components).toBe('rgb');
    // voxel (c=2, r=1, z=1) of sample s is 10 + 3 + 2 + s
    for (let s = 0; s < 3; s++) expect(v.data[2 + 3 * (1 + 2 * (1 + 2 * s))]).toBe(15 + s);
  });

  it('a file whose pixels fail to decode is rejected; the rest loads with the gap reported', async () => {
    const files = stackOf(along([0, 0, 0], [0, 0, 1], 2, [0, 1, 2, 3, 4]));
    const broken = files[2]!;
    files[2] = { header: broken.header, pixels: async () => Promise.reject(new Error('bad codestream')) };
    const res = await assembleSeries(files, ctx);
    expect(res.rejected).toEqual([{ name: broken.header.sourceName, code: 'decode_failed', message: expect.stringContaining('bad codestream') }]);
    expect(tags(res.volumes[0]!)).toEqual([0, 1, 3, 4]);
    expect(codes(res.volumes[0]!)).toEqual(['missing_slices']);
  });

  it('a series larger than maxVoxelBytes is refused before its pixels are decoded', async () => {
    let decoded = 0;
    const files = stackOf(along([0, 0, 0], [0, 0, 1], 2, [0, 1, 2])).map((s) => ({ header: s.header, pixels: () => (decoded++, s.pixels()) }));
    const res = await assembleSeries(files, { limits: { ...limits, maxVoxelBytes: 3 * 4 * 3 * 2 - 1 } });
    expect(res.volumes).toEqual([]);
    expect(res.rejected.map((r) => r.code)).toEqual(['too_large', 'too_large', 'too_large']);
    expect(decoded).toBe(0);
  });

  it('meta: UIDs, window of the first slice, orientation code', async () => {
    const v = await one(stackOf(along([0, 0, 0], [0, 0, 1], 2, [0, 1]), (k) => ({ window: { center: 40 + k, width: 400 } })));
    expect(v.meta).toMatchObject({ format: 'dicom', modality: 'MR', studyInstanceUID: '1.2.3', seriesInstanceUID: '1.2.3.1', frameOfReferenceUID: '1.2.3.9', window: { center: 40, width: 400 }, orientation: 'LPS', photometric: 'MONOCHROME2' });
  });
});
