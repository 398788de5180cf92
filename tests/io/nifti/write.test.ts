/**
 * Our NIfTI writer judged by nibabel (one python process for every file written here): same stored values,
 * sform exact, qform equal for rigid and left-handed affines and the nearest rigid fit for sheared ones,
 * header fields as promised, no nibabel header check complaining; and byte-exact on a second round trip.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import type { Mat4 } from '../../../io/geometry.ts';
import { readNifti } from '../../../io/nifti/read.ts';
import { writeNifti } from '../../../io/nifti/write.ts';
import { allocate, type DType, type Volume } from '../../../io/volume.ts';
import { pythonJson } from '../../_helpers/python.ts';
import { NIBABEL_DATA, requireData } from '../../_helpers/testdata.ts';
import { NIBABEL_DUMP, sha256, type NibabelRef } from './fixtures.ts';

const WRITER_ORACLE = `
import json, sys, hashlib, warnings, numpy as np, nibabel as nib
warnings.simplefilter('ignore')
out = {}
for f in sys.argv[1:]:
    img = nib.load(f)
    hdr = img.header
    raw = np.asanyarray(img.dataobj.get_unscaled())
    if raw.dtype.names: raw = np.stack([raw[n] for n in raw.dtype.names], axis=min(3, raw.ndim))
    checks = type(hdr)._get_checks()
    problems = [rep.problem_msg for chk in checks for _, rep in [chk(hdr.copy(), fix=False)] if rep.problem_level > 0]
    with nib.openers.ImageOpener(f) as fo:
        head = fo.read(560)
    v2 = isinstance(hdr, nib.Nifti2Header)
    out[f] = {'sha': hashlib.sha256(np.asarray(raw).astype(raw.dtype.newbyteorder('<')).tobytes(order='F')).hexdigest(),
      'cls': type(img).__name__, 'shape': list(img.shape), 'affine': img.affine.tolist(),
      'sform': hdr.get_sform().tolist(), 'qform': hdr.get_qform().tolist(),
      'codes': [int(hdr['sform_code']), int(hdr['qform_code'])], 'slope': float(img.dataobj.slope), 'inter': float(img.dataobj.inter),
      'dtype': str(img.get_data_dtype()), 'offset': int(img.dataobj.offset), 'ext_flag': list(head[(540 if v2 else 348):(544 if v2 else 352)]),
      'units': list(hdr.get_xyzt_units()), 'cal': [float(hdr['cal_min']), float(hdr['cal_max'])], 'pixdim': [float(p) for p in hdr['pixdim']],
      'descrip': hdr['descrip'].item().decode(), 'problems': problems}
print(json.dumps(out))
`;
interface WrittenRef {
  sha: string;
  cls: string;
  shape: number[];
  affine: number[][];
  sform: number[][];
  qform: number[][];
  codes: number[];
  slope: number;
  inter: number;
  dtype: string;
  offset: number;
  ext_flag: number[];
  units: string[];
  cal: number[];
  pixdim: number[];
  descrip: string;
  problems: string[];
}

const ctx = { limits: resolveLimits() };
const dir = mkdtempSync(join(tmpdir(), 'gv-nifti-w-'));

function make(dtype: DType, shape: number[], affine: Mat4, extra: Partial<Volume['meta']> = {}, spacing4?: number): Volume {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = allocate(dtype, n);
  const big = dtype === 'uint8' || dtype === 'int8' ? 127 : 30011;
  for (let i = 0; i < n; i++) data[i] = dtype.startsWith('float') ? Math.sin(i) * 1000 : (i * 37) % big;
  const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0]![c]!, affine[1]![c]!, affine[2]![c]!));
  if (shape.length > 3) spacing.push(spacing4 ?? 1);
  return { data, shape, spacing, affine, dtype, meta: { format: 'nifti', components: 'scalar', warnings: [], ...extra } };
}

/** A rotation about an arbitrary axis times zooms 0.9, 1.1, 2.4, optionally mirrored: an oblique slab. */
function oblique(mirror: boolean): Mat4 {
  const [x, y, z] = [0.2, -0.4, 0.89].map((v, _, a) => v / Math.hypot(...a)) as [number, number, number];
  const t = 0.7;
  const c = Math.cos(t);
  const s = Math.sin(t);
  const R = [
    [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
    [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
    [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
  ];
  const zooms = [0.9, 1.1, mirror ? -2.4 : 2.4];
  return [...R.map((row, r) => [...row.map((v, k) => v * zooms[k]!), [-80.25, 12.5, 33.75][r]!]), [0, 0, 0, 1]];
}
const sheared: Mat4 = [
  [1, 0, 0, 1],
  [0, 1, 0.4, 2],
  [0, 0, 2, 3],
  [0, 0, 0, 1],
];
const leftHanded: Mat4 = [
  [-1.5, 0, 0, 90],
  [0, 1.5, 0, -120],
  [0, 0, 3, -60],
  [0, 0, 0, 1],
];

/** Synthetic volumes: every dtype, 3D and 4D, RGB, rescale, rigid/mirrored/sheared, a NIfTI-2 sized one. */
const synthetic: [string, Volume, { gzip?: boolean; description?: string }?][] = [
  ['int16 oblique', make('int16', [7, 6, 5], oblique(false))],
  ['int16 oblique mirrored (qfac -1)', make('int16', [7, 6, 5], oblique(true))],
  ['uint8 left-handed 4D, TR 2.5 s', make('uint8', [5, 4, 3, 2], leftHanded, {}, 2.5)],
  ['int8', make('int8', [4, 3, 2], leftHanded)],
  ['uint16 with rescale', make('uint16', [3, 3, 3], oblique(false), { rescale: { slope: 0.5, intercept: -1024 } })],
  ['int32', make('int32', [4, 3, 2], oblique(true))],
  ['uint32', make('uint32', [4, 3, 2], leftHanded)],
  ['float32', make('float32', [4, 4, 4], leftHanded)],
  ['float64 gzip', make('float64', [4, 4, 4], oblique(false)), { gzip: true, description: 'a test volume' }],
  ['rgb', make('uint8', [6, 5, 1, 3], leftHanded, { components: 'rgb' })],
  ['2D image', make('uint8', [9, 7], leftHanded)],
  ['sheared', make('int16', [4, 4, 4], sheared)],
  ['40000x2 (NIfTI-2)', make('uint8', [40000, 2, 1], leftHanded)],
];
const synthPaths = synthetic.map(([name, v, opts], i) => {
  const p = join(dir, `s${i}_${name.replace(/\W+/g, '_')}.nii${opts?.gzip ? '.gz' : ''}`);
  writeFileSync(p, writeNifti(v, opts));
  return p;
});

/** Real files read by us and written back: nibabel must see the original's data, affine and scaling. */
const real = ['anatomical.nii', 'functional.nii', 'example4d.nii.gz', 'example_nifti2.nii.gz', 'reoriented_anat_moved.nii'].map((f) => requireData(join(NIBABEL_DATA, f)));
const realVolumes = real.map((f) => readNifti(new Uint8Array(readFileSync(f)), ctx, f));
const realPaths = realVolumes.map((v, i) => {
  const p = join(dir, `r${i}.nii`);
  writeFileSync(p, writeNifti(v));
  return p;
});

const written = pythonJson<Record<string, WrittenRef>>(WRITER_ORACLE, [...synthPaths, ...realPaths]);
const originals = pythonJson<Record<string, NibabelRef>>(NIBABEL_DUMP, real);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const det3 = (m: number[][]) =>
  m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) - m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) + m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);
const maxDiff = (a: number[][], b: number[][], rows = 4) => Math.max(...a.slice(0, rows).flatMap((row, r) => row.map((x, c) => Math.abs(x - b[r]![c]!))));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

describe('writeNifti read back by nibabel', () => {
  it.each(synthetic.map(([name], i) => [name, i] as const))('%s', (name, i) => {
    const [, v, opts] = synthetic[i]!;
    const ref = written[synthPaths[i]!]!;
    const isV2 = name.includes('NIfTI-2');
    expect(ref.cls).toBe(isV2 ? 'Nifti2Image' : 'Nifti1Image');
    expect(ref.problems).toEqual([]);
    // data: nibabel's stored values equal ours (RGB24 read back as planar components)
    expect(ref.sha).toBe(sha256(v));
    expect(ref.dtype).toBe(v.meta.components === 'rgb' ? "[('R', 'u1'), ('G', 'u1'), ('B', 'u1')]" : { int8: 'int8', uint8: 'uint8', int16: 'int16', uint16: 'uint16', int32: 'int32', uint32: 'uint32', float32: 'float32', float64: 'float64' }[v.dtype]);
    // geometry: sform exact (to float32), get_best_affine is the sform, both codes 1 (scanner)
    expect(ref.codes).toEqual([1, 1]);
    expect(maxDiff(ref.sform, v.affine)).toBeLessThan(1e-5);
    expect(maxDiff(ref.affine, v.affine)).toBeLessThan(1e-5);
    if (name === 'sheared') {
      // qform cannot hold shear: it is the nearest rigid fit, keeping each column's length
      expect(Math.abs(ref.qform[1]![2]! - 0.4)).toBeGreaterThan(0.1);
      const len = (m: number[][], c: number) => Math.hypot(m[0]![c]!, m[1]![c]!, m[2]![c]!);
      for (let c = 0; c < 3; c++) expect(len(ref.qform, c)).toBeCloseTo(len(sheared, c), 6);
      expect(maxDiff(ref.qform, sheared).toFixed(0)).toBe('0'); // close, not equal
    } else {
      expect(maxDiff(ref.qform, v.affine)).toBeLessThan(1e-5);
    }
    // header fields
    expect(ref.offset).toBe(isV2 ? 544 : 352);
    expect(ref.ext_flag).toEqual([0, 0, 0, 0]);
    expect(ref.units).toEqual(['mm', 'sec']);
    expect(ref.cal).toEqual([0, 0]);
    expect(ref.pixdim[0]).toBe(det3(v.affine) < 0 ? -1 : 1);
    for (let c = 0; c < 3; c++) expect(ref.pixdim[c + 1]).toBeCloseTo(v.spacing[c]!, 5);
    if (v.shape.length === 4 && v.meta.components !== 'rgb') expect(ref.pixdim[4]).toBe(v.spacing[3]);
    expect(ref.slope).toBe(v.meta.rescale?.slope ?? 1);
    expect(ref.inter).toBe(v.meta.rescale?.intercept ?? 0);
    expect(ref.descrip).toBe(opts?.description ?? 'gatedvision');
  });

  it.each(real.map((f, i) => [f.split('/').pop()!, i] as const))('real file %s: read, written, read by nibabel as the original', (_name, i) => {
    const orig = originals[real[i]!]!;
    const ref = written[realPaths[i]!]!;
    if (orig.error !== undefined) throw new Error(orig.error);
    expect(ref.problems).toEqual([]);
    expect(ref.sha).toBe(orig.sha);
    expect(maxDiff(ref.affine, orig.affine)).toBeLessThan(1e-5);
    expect(ref.slope).toBe(orig.slope);
    expect(ref.inter).toBe(orig.inter);
  });
});

describe('writeNifti round trip', () => {
  it.each([...synthetic.map(([name, v]) => [name, v] as const), ...realVolumes.map((v, i) => [`real ${real[i]!.split('/').pop()}`, v] as const)])(
    '%s: write(read(write(v))) is byte-identical, plain and gzipped',
    (_name, v) => {
      for (const gzip of [false, true]) {
        const first = writeNifti(v, { gzip });
        const back = readNifti(first, ctx, 'rt');
        expect(sha256(back)).toBe(sha256(v));
        expect(same(writeNifti(back, { gzip }), first)).toBe(true);
      }
    },
  );

  it('refuses what NIfTI cannot hold, with typed codes', () => {
    const v = make('int16', [2, 2, 2], leftHanded);
    const bad = (patch: Partial<Volume>) => {
      try {
        writeNifti({ ...v, ...patch });
        return 'ok';
      } catch (e) {
        return (e as { code?: string }).code;
      }
    };
    expect(bad({})).toBe('ok');
    expect(bad({ affine: [[Number.NaN, 0, 0, 0], ...leftHanded.slice(1)] })).toBe('bad_geometry');
    expect(bad({ dtype: 'float32' })).toBe('shape');
    expect(bad({ shape: [2, 2, 3] })).toBe('shape');
    expect(bad({ shape: [2, 2, 2, 1, 1] })).toBe('shape');
  });
});
