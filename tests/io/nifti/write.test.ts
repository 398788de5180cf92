/** Our NIfTI writer, read back by nibabel (data, qform, sform), and byte-exact on a second round trip. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import type { Mat4 } from '../../../io/geometry.ts';
import { readNifti } from '../../../io/nifti/read.ts';
import { writeNifti } from '../../../io/nifti/write.ts';
import { allocate, type DType, type Volume } from '../../../io/volume.ts';
import { pythonJson } from '../../_helpers/python.ts';

const ORACLE = `
import json, sys, hashlib, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
raw = np.asanyarray(img.dataobj.get_unscaled())
if raw.dtype.names: raw = np.stack([raw[n] for n in raw.dtype.names], axis=-1)
print(json.dumps({'sha': hashlib.sha256(np.asarray(raw).astype(raw.dtype.newbyteorder('<')).tobytes(order='F')).hexdigest(),
  'shape': list(img.shape), 'sform': img.get_sform().tolist(), 'qform': img.get_qform().tolist(),
  'codes': [int(img.header['sform_code']), int(img.header['qform_code'])], 'slope': float(img.dataobj.slope), 'inter': float(img.dataobj.inter),
  'dtype': str(img.get_data_dtype())}))
`;

const dir = mkdtempSync(join(tmpdir(), 'gv-nifti-w-'));
const ctx = { limits: resolveLimits() };

function make(dtype: DType, shape: number[], affine: Mat4, rgb = false): Volume {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = allocate(dtype, n);
  for (let i = 0; i < n; i++) data[i] = dtype.startsWith('float') ? Math.sin(i) * 1000 : (i * 37) % (dtype === 'uint8' || rgb ? 251 : 30011);
  return { data, shape, spacing: [1, 1, 1], affine, dtype, meta: { format: 'nifti', components: rgb ? 'rgb' : 'scalar', warnings: [] } };
}

/** A rigid rotation (axis-angle) with zooms 0.9, 1.1, 2.4: what a scanner writes for an oblique slab. */
const oblique: Mat4 = (() => {
  const [x, y, z] = [0.2, -0.4, 0.89].map((v, _, a) => v / Math.hypot(...a)) as [number, number, number];
  const t = 0.7;
  const c = Math.cos(t);
  const s = Math.sin(t);
  const R = [
    [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
    [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
    [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
  ];
  const zooms = [0.9, 1.1, 2.4];
  return [...R.map((row, r) => [...row.map((v, k) => v * zooms[k]!), [-80.25, 12.5, 33.75][r]!]), [0, 0, 0, 1]];
})();
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

describe('writeNifti', () => {
  it.each([
    ['int16 oblique', make('int16', [7, 6, 5], oblique)],
    ['uint8 left-handed 4D', make('uint8', [5, 4, 3, 2], leftHanded)],
    ['float32', make('float32', [4, 4, 4], leftHanded)],
    ['rgb', make('uint8', [6, 5, 1, 3], leftHanded, true)],
    ['uint16 with rescale', { ...make('uint16', [3, 3, 3], oblique), meta: { format: 'nifti' as const, components: 'scalar' as const, warnings: [], rescale: { slope: 0.5, intercept: -1024 } } }],
  ])('%s: nibabel reads the same data, sform exact, qform equal for rigid affines', (name, v) => {
    const bytes = writeNifti(v);
    const file = join(dir, `${name.replace(/\W+/g, '_')}.nii`);
    writeFileSync(file, bytes);
    const ref = pythonJson<{ sha: string; shape: number[]; sform: number[][]; qform: number[][]; codes: number[]; slope: number; inter: number }>(ORACLE, [file]);
    const back = readNifti(bytes, ctx, file);
    const ours = new Uint8Array(back.data.buffer, back.data.byteOffset, back.data.byteLength);
    const orig = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
    expect(Buffer.compare(Buffer.from(ours), Buffer.from(orig))).toBe(0);
    expect(ref.codes).toEqual([1, 1]);
    for (let r = 0; r < 4; r++) {
      for (let c = 0; c < 4; c++) {
        expect(Math.abs(ref.sform[r]![c]! - v.affine[r]![c]!)).toBeLessThan(1e-5);
        expect(Math.abs(ref.qform[r]![c]! - v.affine[r]![c]!)).toBeLessThan(1e-4);
      }
    }
    expect(ref.slope).toBeCloseTo(v.meta.rescale?.slope ?? 1, 6);
    expect(ref.inter).toBeCloseTo(v.meta.rescale?.intercept ?? 0, 6);
    // second round trip is byte-identical, gzipped or not
    expect(Buffer.compare(Buffer.from(writeNifti(back)), Buffer.from(bytes))).toBe(0);
    expect(Buffer.compare(Buffer.from(writeNifti(readNifti(writeNifti(v, { gzip: true }), ctx, 'gz'), { gzip: true })), Buffer.from(writeNifti(v, { gzip: true })))).toBe(0);
  });

  it('sheared affine: sform exact, qform is the nearest rigid fit (not equal)', () => {
    const v = make('int16', [4, 4, 4], sheared);
    const file = join(dir, 'sheared.nii');
    writeFileSync(file, writeNifti(v));
    const ref = pythonJson<{ sform: number[][]; qform: number[][] }>(ORACLE, [file]);
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) expect(Math.abs(ref.sform[r]![c]! - sheared[r]![c]!)).toBeLessThan(1e-6);
    expect(Math.abs(ref.qform[1]![2]! - 0.4)).toBeGreaterThan(0.1);
    // the qform keeps the column lengths
    const len = (m: number[][], c: number) => Math.hypot(m[0]![c]!, m[1]![c]!, m[2]![c]!);
    for (let c = 0; c < 3; c++) expect(len(ref.qform, c)).toBeCloseTo(len(sheared, c), 5);
  });
});
