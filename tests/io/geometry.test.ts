/** Geometry against nibabel: DICOM LPS → RAS affines and axis codes computed by code no one here wrote. */
import { describe, expect, it } from 'vitest';
import { affinesClose, axisCodes, dicomAffine, invert4, lpsToRas, matmul4, identity4, sliceShearDegrees, spacingFromAffine, type Mat4 } from '../../io/geometry.ts';
import { pythonJson } from '../_helpers/python.ts';

const ORACLE = `
import json, sys, numpy as np
from nibabel.orientations import aff2axcodes
from nibabel.nicom.dicomwrappers import wrapper_from_data
import pydicom
cases = json.loads(sys.stdin.read())
out = []
for c in cases:
    ds = pydicom.Dataset()
    ds.ImageOrientationPatient = c['iop']; ds.ImagePositionPatient = c['ipp']; ds.PixelSpacing = c['ps']
    ds.Rows = 4; ds.Columns = 5
    ds.SliceThickness = c['thick']; ds.SpacingBetweenSlices = c['thick']
    w = wrapper_from_data(ds)
    # nibabel's wrapper affine maps (row, col, slice) voxel indices to LPS; reorder to (col, row, slice).
    a = np.array(w.affine)
    a = a[:, [1, 0, 2, 3]]
    # nibabel's slice column is (col x row); DICOM's slice normal is (row x col): same line, opposite sign.
    a[:, 2] *= -1
    ras = np.diag([-1, -1, 1, 1]) @ a
    out.append({'lps': a.tolist(), 'ras': ras.tolist(), 'codes': ''.join(aff2axcodes(ras))})
print(json.dumps(out))
`;

function rot(ax: number[], deg: number): number[][] {
  const [x, y, z] = ax.map((v) => v / Math.hypot(...ax)) as [number, number, number];
  const c = Math.cos((deg * Math.PI) / 180);
  const s = Math.sin((deg * Math.PI) / 180);
  const t = 1 - c;
  return [
    [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
    [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
    [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
  ];
}

describe('dicomAffine against nibabel.nicom', () => {
  const cases = [
    { iop: [1, 0, 0, 0, 1, 0], ipp: [-120.5, -99.25, 33.0], ps: [0.7, 0.9], thick: 2.5 },
    { iop: [0, 1, 0, 0, 0, -1], ipp: [10, -20, 80], ps: [1.1, 1.3], thick: 3 }, // sagittal
    { iop: [1, 0, 0, 0, 0, -1], ipp: [-5, 40, 12], ps: [0.5, 0.6], thick: 1.2 }, // coronal
    (() => {
      const R = rot([0.3, -0.5, 0.8], 23);
      return { iop: [R[0]![0]!, R[1]![0]!, R[2]![0]!, R[0]![1]!, R[1]![1]!, R[2]![1]!], ipp: [3.3, -7.1, 55.5], ps: [0.8, 0.65], thick: 1.7 };
    })(),
  ];
  const oracle = pythonJson<{ lps: Mat4; ras: Mat4; codes: string }[]>(ORACLE, [], { input: JSON.stringify(cases) });

  it.each(cases.map((c, i) => [i, c] as const))('case %i: same RAS affine and axis codes', (i, c) => {
    const iop = c.iop;
    const normal = [iop[1]! * iop[5]! - iop[2]! * iop[4]!, iop[2]! * iop[3]! - iop[0]! * iop[5]!, iop[0]! * iop[4]! - iop[1]! * iop[3]!];
    const step = normal.map((n) => n * c.thick);
    const ours = dicomAffine(iop, c.ipp, c.ps, step);
    expect(affinesClose(ours, oracle[i]!.ras, 1e-6)).toBe(true);
    expect(axisCodes(ours)).toBe(oracle[i]!.codes);
    expect(spacingFromAffine(ours).map((s) => +s.toFixed(6))).toEqual([c.ps[1], c.ps[0], c.thick]);
  });
});

describe('matrix helpers', () => {
  it('lpsToRas is an involution and invert4 inverts', () => {
    const a: Mat4 = [
      [0.9, 0.1, 0.0, -20],
      [-0.2, 1.1, 0.3, 14],
      [0.05, 0, 2.5, 7],
      [0, 0, 0, 1],
    ];
    expect(affinesClose(lpsToRas(lpsToRas(a)), a, 1e-12)).toBe(true);
    expect(affinesClose(matmul4(a, invert4(a)), identity4(), 1e-12)).toBe(true);
  });
  it('measures slice shear (gantry tilt) in degrees', () => {
    const t = (12 * Math.PI) / 180;
    const tilted: Mat4 = [
      [1, 0, 0, 0],
      [0, 1, Math.tan(t) * 2, 0],
      [0, 0, 2, 0],
      [0, 0, 0, 1],
    ];
    expect(sliceShearDegrees(tilted)).toBeCloseTo(12, 6);
    expect(sliceShearDegrees(identity4())).toBeCloseTo(0, 9);
  });
});
