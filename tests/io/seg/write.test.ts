/**
 * DICOM SEG written on a real (oblique) source series: dciodvfy finds no errors, and pydicom reading it
 * back finds every segment at the world position our label map puts it (centroids), on the right
 * referenced source images, with the same voxel counts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { applyAffine, rasToLps } from '../../../io/geometry.ts';
import { loadInputDirect } from '../../../io/load.ts';
import { toCanonical } from '../../../io/orient.ts';
import { writeDicomSeg, type SegSource } from '../../../io/seg/write.ts';
import type { Volume } from '../../../io/volume.ts';
import { PYTHON, pythonJson } from '../../_helpers/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-seg-'));
const READ_BACK = `
import json, sys, numpy as np, pydicom
ds = pydicom.dcmread(sys.argv[1])
sh = ds.SharedFunctionalGroupsSequence[0]
iop = np.array(sh.PlaneOrientationSequence[0].ImageOrientationPatient, float)
ps = np.array(sh.PixelMeasuresSequence[0].PixelSpacing, float)
arr = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
acc = {}
refs = []
for f, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
    seg = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, float)
    refs.append([seg, str(fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID), list(map(float, ipp))])
    r, c = np.nonzero(arr[f])
    world = ipp[None, :] + c[:, None] * ps[1] * iop[None, :3] + r[:, None] * ps[0] * iop[None, 3:]
    a = acc.setdefault(seg, [np.zeros(3), 0])
    a[0] += world.sum(0); a[1] += len(r)
print(json.dumps({'centroids': {k: (v[0] / max(v[1], 1)).tolist() for k, v in acc.items()}, 'counts': {k: v[1] for k, v in acc.items()},
  'refs': refs, 'segments': [[int(s.SegmentNumber), str(s.SegmentLabel)] for s in ds.SegmentSequence]}))
`;

let src: Volume;
let source: SegSource;
let labels: Volume;

beforeAll(async () => {
  execFileSync(PYTHON, [join(import.meta.dirname, '..', '..', '_oracles', 'make_series.py'), join(dir, 'src'), 'oblique']);
  src = (await loadInputDirect(join(dir, 'src'), { limits: resolveLimits() })).volumes[0]!;
  const m = src.meta;
  source = {
    studyInstanceUID: m.studyInstanceUID!,
    seriesInstanceUID: m.seriesInstanceUID!,
    frameOfReferenceUID: m.frameOfReferenceUID!,
    sopClassUID: m.sopClassUID!,
    sopInstanceUIDs: m.sopInstanceUIDs!,
    shape: src.shape,
    affine: src.affine,
    patient: m.patient!,
  };
  const [nx, ny, nz] = src.shape as [number, number, number];
  const data = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    if ((i - 30) ** 2 + (j - 40) ** 2 + ((k - 6) * 1.2) ** 2 < 64) data[i + nx * (j + ny * k)] = 1;
    if (i > 55 && i < 70 && j > 60 && j < 90 && k > 10 && k < 16) data[i + nx * (j + ny * k)] = 2;
  }
  labels = { data, shape: [nx, ny, nz], spacing: src.spacing, affine: src.affine, dtype: 'uint8', meta: { format: 'dicom', components: 'scalar', warnings: [] } };
}, 60_000);

function centroidLps(v: Volume, label: number): { c: number[]; n: number } {
  const [nx, ny, nz] = v.shape as [number, number, number];
  const lps = rasToLps(v.affine);
  const s = [0, 0, 0];
  let n = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    if (v.data[i + nx * (j + ny * k)] !== label) continue;
    const w = applyAffine(lps, [i, j, k]);
    for (let d = 0; d < 3; d++) s[d]! += w[d]!;
    n++;
  }
  return { c: s.map((x) => x / n), n };
}

describe('writeDicomSeg', () => {
  it('is valid for dciodvfy and lands where the label map says (pydicom read-back)', () => {
    const seg = writeDicomSeg(labels, source, [
      { label: 1, name: 'Sphere', color: [255, 0, 0] },
      { label: 2, name: 'Box' },
    ]);
    const file = join(dir, 'seg.dcm');
    writeFileSync(file, seg);
    const v = spawnSync('dciodvfy', [file], { encoding: 'utf8' });
    const report = `${v.stdout}${v.stderr}`;
    expect(report.split('\n').filter((l) => /^Error/.test(l)), report).toEqual([]);
    const back = pythonJson<{ centroids: Record<string, number[]>; counts: Record<string, number>; refs: [number, string, number[]][]; segments: [number, string][] }>(READ_BACK, [file]);
    expect(back.segments).toEqual([[1, 'Sphere'], [2, 'Box']]);
    expect(report).toContain('Segmentation');
    for (const [label, seg] of [[1, '1'], [2, '2']] as const) {
      const ours = centroidLps(labels, label);
      expect(back.counts[seg]).toBe(ours.n);
      for (let d = 0; d < 3; d++) expect(Math.abs(back.centroids[seg]![d]! - ours.c[d]!)).toBeLessThan(1e-3);
    }
    // each frame references the source slice at its own position
    const lps = rasToLps(src.affine);
    for (const [, uid, ipp] of back.refs) {
      const k = source.sopInstanceUIDs.indexOf(uid);
      expect(k).toBeGreaterThanOrEqual(0);
      const want = applyAffine(lps, [0, 0, k]);
      for (let d = 0; d < 3; d++) expect(Math.abs(ipp[d]! - want[d]!)).toBeLessThan(1e-3);
    }
  });

  it('a label map in canonical (RAS) orientation gives the same frames', () => {
    const a = writeDicomSeg(labels, source, [{ label: 1, name: 'Sphere' }, { label: 2, name: 'Box' }]);
    const b = writeDicomSeg(toCanonical(labels), source, [{ label: 1, name: 'Sphere' }, { label: 2, name: 'Box' }]);
    const pixels = (x: Uint8Array) => Buffer.from(x.subarray(x.length - Math.ceil((labels.shape[0]! * labels.shape[1]! * 20) / 8)));
    expect(pixels(a).equals(pixels(b))).toBe(true);
  });

  it('refuses a mismatched grid, undefined labels and float maps', () => {
    const shifted = { ...labels, affine: labels.affine.map((r, i) => (i === 0 ? [r[0]!, r[1]!, r[2]!, r[3]! + 0.4] : r)) };
    expect(() => writeDicomSeg(shifted, source, [{ label: 1, name: 'a' }, { label: 2, name: 'b' }])).toThrow(GatedError);
    expect(() => writeDicomSeg(labels, source, [{ label: 1, name: 'a' }])).toThrow(/label 2/);
    expect(() => writeDicomSeg({ ...labels, dtype: 'float32', data: new Float32Array(labels.data.length) }, source, [{ label: 1, name: 'a' }])).toThrow(GatedError);
  });
});
