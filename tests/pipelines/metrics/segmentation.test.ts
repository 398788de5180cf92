/** Segmentation metrics against scipy (distance_transform_edt, binary_erosion) on random anisotropic blobs. */
import { describe, expect, it } from 'vitest';
import { distanceTransform } from '../../../pipelines/metrics/edt.ts';
import { segmentationMetrics } from '../../../pipelines/metrics/segmentation.ts';
import { pythonJson } from '../../_helpers/python.ts';

const ORACLE = `
import json, sys, base64, numpy as np
from scipy import ndimage as ndi
c = json.loads(sys.stdin.read())
shape, sp = c['shape'], c['spacing']
A = np.frombuffer(base64.b64decode(c['a']), np.uint8).reshape(shape, order='F')
B = np.frombuffer(base64.b64decode(c['b']), np.uint8).reshape(shape, order='F')
if shape[2] == 1:  # a 2D image: surfaces and distances in the plane
    A, B, sp = A[:, :, 0], B[:, :, 0], sp[:2]
st = ndi.generate_binary_structure(A.ndim, 1)
res = {}
for lab in c['labels']:
    a, b = A == lab, B == lab
    sa = a & ~ndi.binary_erosion(a, st, border_value=0)
    sb = b & ~ndi.binary_erosion(b, st, border_value=0)
    da = ndi.distance_transform_edt(~sb, sampling=sp)[sa]
    db = ndi.distance_transform_edt(~sa, sampling=sp)[sb]
    inter = (a & b).sum()
    res[lab] = {'dice': float(2 * inter / (a.sum() + b.sum())), 'iou': float(inter / (a | b).sum()),
                'hd95': float(max(np.percentile(da, 95), np.percentile(db, 95))),
                'sd': float(((da <= c['tol']).sum() + (db <= c['tol']).sum()) / (len(da) + len(db)))}
edt = ndi.distance_transform_edt(~(A == 1), sampling=sp)
res['edt'] = base64.b64encode(edt.astype('<f8').tobytes(order='F')).decode()  # same F-order bytes for [x,y] and [x,y,1]
print(json.dumps(res))
`;

function blobs(shape: number[], seed: number, labels: number): Uint8Array {
  const [nx, ny, nz] = shape as [number, number, number];
  const out = new Uint8Array(nx * ny * nz);
  let s = seed;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let l = 1; l <= labels; l++) {
    for (let b = 0; b < 3; b++) {
      const c = [r() * nx, r() * ny, r() * nz];
      const rad = 2 + r() * 5;
      for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
        if ((i - c[0]!) ** 2 + (j - c[1]!) ** 2 + ((k - c[2]!) * 1.5) ** 2 < rad * rad) out[i + nx * (j + ny * k)] = l;
      }
    }
  }
  return out;
}

describe('segmentation metrics vs scipy', () => {
  it.each([
    [[24, 20, 12], [0.8, 0.9, 2.5]],
    [[31, 17, 1], [0.5, 0.7, 1]],
  ])('shape %j spacing %j', (shape, spacing) => {
    const a = blobs(shape, 11, 2);
    const b = blobs(shape, 12, 2);
    for (let i = 0; i < a.length; i += 7) if (a[i]) b[i] = a[i]!; // partial overlap
    const ref = pythonJson<Record<string, { dice: number; iou: number; hd95: number; sd: number }> & { edt: string }>(ORACLE, [], {
      input: JSON.stringify({ shape, spacing, labels: [1, 2], tol: 1.5, a: Buffer.from(a).toString('base64'), b: Buffer.from(b).toString('base64') }),
    });
    const ours = segmentationMetrics(a, b, shape, spacing, [1, 2], 1.5);
    for (const m of ours) {
      const r = ref[String(m.label)]!;
      expect(m.dice).toBeCloseTo(r.dice, 10);
      expect(m.iou).toBeCloseTo(r.iou, 10);
      expect(m.hd95).toBeCloseTo(r.hd95, 8);
      expect(m.surfaceDice).toBeCloseTo(r.sd, 10);
    }
    const edt = distanceTransform(a.map((x) => (x === 1 ? 1 : 0)), shape, spacing);
    const wb = Buffer.from(ref.edt, 'base64');
    const want = new Float64Array(wb.buffer.slice(wb.byteOffset, wb.byteOffset + wb.byteLength));
    let max = 0;
    for (let i = 0; i < edt.length; i++) max = Math.max(max, Math.abs(edt[i]! - want[i]!));
    expect(max).toBeLessThan(1e-9);
  });

  it('empty prediction against a non-empty reference: Dice 0, HD95 infinite', () => {
    const ref = new Uint8Array(27).fill(1);
    const m = segmentationMetrics(new Uint8Array(27), ref, [3, 3, 3], [1, 1, 1], [1])[0]!;
    expect(m.dice).toBe(0);
    expect(m.hd95).toBe(Infinity);
  });
});
