/** toCanonical against nibabel's as_closest_canonical on flipped, permuted and oblique affines. */
import { describe, expect, it } from 'vitest';
import { affinesClose, axisCodes, applyAffine, type Mat4 } from '../../io/geometry.ts';
import { toCanonical } from '../../io/orient.ts';
import type { Volume } from '../../io/volume.ts';
import { pythonJson } from '../_helpers/python.ts';

const ORACLE = `
import json, sys, base64, numpy as np, nibabel as nib
c = json.loads(sys.stdin.read())
arr = np.frombuffer(base64.b64decode(c['data']), dtype='<i2').reshape(c['shape'], order='F')
img = nib.as_closest_canonical(nib.Nifti1Image(arr, np.array(c['affine'])))
out = np.asarray(img.dataobj)
print(json.dumps({'shape': list(out.shape), 'affine': img.affine.tolist(), 'data': base64.b64encode(out.astype('<i2').tobytes(order='F')).decode()}))
`;

function volume(shape: number[], affine: Mat4): Volume {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Int16Array(n);
  for (let i = 0; i < n; i++) data[i] = (i * 7919) % 30011 - 15000;
  return { data, shape, spacing: [1, 1, 1], affine, dtype: 'int16', meta: { format: 'nifti', components: 'scalar', warnings: [] } };
}

const cases: [string, number[], Mat4][] = [
  ['LPS axial (DICOM-like)', [5, 4, 3], [[-0.8, 0, 0, 90], [0, -0.8, 0, 110], [0, 0, 2, -30], [0, 0, 0, 1]]],
  ['sagittal PIR', [3, 5, 4], [[0, 0, 1.2, -10], [-1, 0, 0, 20], [0, -1.5, 0, 40], [0, 0, 0, 1]]],
  ['oblique with flip', [4, 3, 5], [[0.95, 0.31, 0.02, 3], [0.3, -0.94, 0.1, -7], [-0.05, 0.1, -1.9, 11], [0, 0, 0, 1]]],
  ['4D time series', [3, 4, 2, 3], [[0, -1, 0, 5], [0, 0, 2, -4], [-1.1, 0, 0, 8], [0, 0, 0, 1]]],
];

describe('toCanonical', () => {
  it.each(cases)('%s equals nibabel', (_name, shape, affine) => {
    const v = volume(shape, affine);
    const ref = pythonJson<{ shape: number[]; affine: Mat4; data: string }>(ORACLE, [], {
      input: JSON.stringify({ shape, affine, data: Buffer.from(v.data.buffer).toString('base64') }),
    });
    const c = toCanonical(v);
    expect(c.shape).toEqual(ref.shape);
    expect(affinesClose(c.affine, ref.affine, 1e-9)).toBe(true);
    expect(Buffer.from(c.data.buffer).toString('base64')).toBe(ref.data);
    expect(c.meta.orientation).toBe(axisCodes(ref.affine));
  });

  it('keeps every voxel at its world position', () => {
    const v = volume([4, 3, 5], cases[2]![2]);
    const c = toCanonical(v);
    // find the voxel holding a given value in both grids and compare world coordinates
    for (const probe of [0, 17, 59]) {
      const value = v.data[probe]!;
      const ci = Array.from(c.data).indexOf(value);
      const idx = (n: number, s: number[]) => [n % s[0]!, Math.floor(n / s[0]!) % s[1]!, Math.floor(n / (s[0]! * s[1]!))];
      const a = applyAffine(v.affine, idx(probe, v.shape));
      const b = applyAffine(c.affine, idx(ci, c.shape));
      for (let d = 0; d < 3; d++) expect(b[d]).toBeCloseTo(a[d]!, 9);
    }
  });
});
