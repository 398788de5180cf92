/**
 * `segment` end to end with the shipped brain model on real data: outputs in the source geometry (nibabel),
 * quality against Colin27's own brain mask, the same world-space answer whatever the header orientation,
 * robustness to intensity scaling and a bias field, a DICOM series to NIfTI + DICOM SEG (dciodvfy; pydicom maps
 * the SEG to millimetres and must land on the NIfTI's voxels), a rejected input that does not stop the batch,
 * and byte-identical reruns.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { segmentBatch } from '../../pipelines/segment.ts';
import { loadTaskModel, shippedModelsDir, type TaskModel } from '../../pipelines/task_model.ts';
import { PYTHON, pythonJson, runPython } from '../_helpers/python.ts';
import { MRICRON, requireData } from '../_helpers/testdata.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-segment-'));
const SAMPLE = join(shippedModelsDir(), 'samples', 'colin27_t1_2mm.nii.gz');
const ORACLES = join(import.meta.dirname, '..', '_oracles');
let model: TaskModel;

// Inputs built by nibabel from the bundled sample and mricron's ch2bet: a slab (fast), its reference mask,
// the slab with its voxel axes permuted and flipped (affine adjusted, same world), and a scaled + biased copy.
const BUILD = `
import sys, numpy as np, nibabel as nib
out, sample, bet = sys.argv[1], sys.argv[2], sys.argv[3]
img = nib.load(sample); d = np.asarray(img.dataobj).astype(np.float32)
m = np.asarray(nib.load(bet).dataobj)[:180, :216, :180].reshape(90, 2, 108, 2, 90, 2).mean(axis=(1, 3, 5)) >= 0.5
z0, z1 = 30, 54
aff = img.affine.copy(); aff[:3, 3] = img.affine[:3, :3] @ [0, 0, z0] + img.affine[:3, 3]
slab = d[:, :, z0:z1]
nib.save(nib.Nifti1Image(slab.astype(np.uint8), aff), out + '/slab.nii.gz')
nib.save(nib.Nifti1Image(m[:, :, z0:z1].astype(np.uint8), aff), out + '/slab_ref.nii.gz')
# permute (x,y,z) -> (z,x,y) and flip the new first axis: voxel (i,j,k) of the new file is old (j, k, n-1-i)
n = slab.shape[2]
perm = np.flip(np.transpose(slab, (2, 0, 1)), axis=0)
T = np.zeros((4, 4)); T[3, 3] = 1
T[0, 1] = 1; T[1, 2] = 1; T[2, 0] = -1; T[2, 3] = n - 1
nib.save(nib.Nifti1Image(perm.astype(np.uint8), aff @ T), out + '/slab_reoriented.nii.gz')
x, y = np.meshgrid(np.linspace(-1, 1, slab.shape[0]), np.linspace(-1, 1, slab.shape[1]), indexing='ij')
bias = np.exp(0.35 * x - 0.25 * y + 0.2 * x * y)[:, :, None]
nib.save(nib.Nifti1Image((slab * 3.7 * bias + 20).astype(np.float32), aff), out + '/slab_scaled.nii.gz')
`;

const DICE = `
import sys, json, numpy as np, nibabel as nib
a = nib.as_closest_canonical(nib.load(sys.argv[1])); b = nib.as_closest_canonical(nib.load(sys.argv[2]))
p = np.asarray(a.dataobj) > 0; r = np.asarray(b.dataobj) > 0
print(json.dumps({'dice': float(2 * (p & r).sum() / (p.sum() + r.sum())), 'sameAffine': bool(np.allclose(a.affine, b.affine, atol=1e-5)), 'equal': bool((p == r).all()) if p.shape == r.shape else False}))
`;

beforeAll(async () => {
  await selectDevice('wasm');
  requireData(join(MRICRON, 'ch2bet.nii.gz'));
  runPython(BUILD, [dir, SAMPLE, join(MRICRON, 'ch2bet.nii.gz')]);
  model = await loadTaskModel('brain');
}, 120_000);
afterAll(() => model?.dispose());

describe('segment with the brain model', () => {
  let run1: Awaited<ReturnType<typeof segmentBatch>>;
  beforeAll(async () => {
    run1 = await segmentBatch([join(dir, 'slab.nii.gz'), join(dir, 'slab_reoriented.nii.gz'), join(dir, 'slab_scaled.nii.gz')], model, { outDir: join(dir, 'out1'), modelName: 'brain', device: 'wasm' });
  }, 300_000);

  it('writes label maps on the source grid that match the brain mask', () => {
    expect(run1.done).toBe(3);
    const info = pythonJson<{ shape: number[]; srcShape: number[]; affineMax: number; dtype: string; values: number[] }>(
      `import sys, json, numpy as np, nibabel as nib
a = nib.load(sys.argv[1]); s = nib.load(sys.argv[2])
print(json.dumps({'shape': list(a.shape), 'srcShape': list(s.shape), 'affineMax': float(np.abs(a.affine - s.affine).max()), 'dtype': str(a.get_data_dtype()), 'values': sorted(np.unique(np.asarray(a.dataobj)).tolist())}))`,
      [join(dir, 'out1', 'slab.seg.nii.gz'), join(dir, 'slab.nii.gz')],
    );
    expect(info.shape).toEqual(info.srcShape);
    expect(info.affineMax).toBeLessThan(1e-5);
    expect(info.dtype).toBe('uint8');
    expect(info.values).toEqual([0, 1]);
    const q = pythonJson<{ dice: number }>(DICE, [join(dir, 'out1', 'slab.seg.nii.gz'), join(dir, 'slab_ref.nii.gz')]);
    expect(q.dice).toBeGreaterThan(0.95);
  });

  it('gives the same world-space mask whatever the voxel axis order of the file', () => {
    const q = pythonJson<{ dice: number; sameAffine: boolean; equal: boolean }>(DICE, [join(dir, 'out1', 'slab_reoriented.seg.nii.gz'), join(dir, 'out1', 'slab.seg.nii.gz')]);
    expect(q.sameAffine).toBe(true);
    expect(q.equal).toBe(true);
  });

  it('is robust to intensity scaling and a bias field', () => {
    const q = pythonJson<{ dice: number }>(DICE, [join(dir, 'out1', 'slab_scaled.seg.nii.gz'), join(dir, 'slab_ref.nii.gz')]);
    expect(q.dice).toBeGreaterThan(0.93);
  });

  it('writes a manifest line per input, previews and an HTML report', () => {
    const lines = readFileSync(join(dir, 'out1', 'manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.status)).toEqual(['done', 'done', 'done']);
    expect(lines[0].model.sha256).toBe(model.sha256);
    const html = readFileSync(join(dir, 'out1', 'report.html'), 'utf8');
    for (const n of ['slab', 'slab_reoriented', 'slab_scaled']) expect(html).toContain(`>${n}<`);
    const previews = readdirSync(join(dir, 'out1', 'previews'));
    expect(previews.length).toBeGreaterThanOrEqual(3);
    for (const p of previews) expect(html).toContain(`previews/${p}`);
  });

  it('reports each class volume in mL as the label map holds it', () => {
    const ml = pythonJson<number>(`
import sys, json, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
print(json.dumps(float((np.asarray(img.dataobj) == 1).sum() * np.prod(img.header.get_zooms()[:3]) / 1000)))
`, [join(dir, 'out1', 'slab.seg.nii.gz')]);
    expect(ml).toBeGreaterThan(10);
    expect(readFileSync(join(dir, 'out1', 'report.html'), 'utf8')).toContain(`brain: ${ml.toFixed(1)} mL`);
  });

  it('records where the segment time went, in sub-stages that add up to no more than the stage', () => {
    const lines = readFileSync(join(dir, 'out1', 'manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const { timings: t } of lines as { timings: Record<string, number> }[]) {
      for (const k of ['segment.prepare', 'segment.infer.upload', 'segment.infer.model', 'segment.infer.wait', 'segment.infer.place', 'segment.largestComponent', 'segment.fillHoles', 'segment.restore']) expect(t).toHaveProperty(k);
      for (const v of Object.values(t)) expect(Number.isInteger(v) && v >= 0).toBe(true);
      // firstBatch overlaps the others; each key is rounded on its own
      const parts = Object.entries(t).filter(([k]) => k.startsWith('segment.') && k !== 'segment.infer.firstBatch');
      expect(parts.reduce((a, [, v]) => a + v, 0)).toBeLessThanOrEqual(t.segment! + parts.length);
      expect(t['segment.infer.firstBatch']).toBeLessThanOrEqual(t.segment! + 1);
    }
  });

  it('rejects a damaged input with its code and carries on; a rerun is byte-identical', async () => {
    const bad = join(dir, 'bad.nii.gz');
    execFileSync('bash', ['-c', `head -c 5000 ${join(dir, 'slab.nii.gz')} > ${bad}`]);
    const run2 = await segmentBatch([bad, join(dir, 'slab.nii.gz')], model, { outDir: join(dir, 'out2'), modelName: 'brain', device: 'wasm' });
    expect(run2.rejected).toBe(1);
    expect(run2.done).toBe(1);
    const rec = run2.records.find((r) => r.input.endsWith('bad.nii.gz'))!;
    expect(rec.status).toBe('rejected');
    expect(rec.code).toBe('truncated');
    for (const f of ['slab.seg.nii.gz', ...readdirSync(join(dir, 'out1', 'previews')).filter((p) => p.startsWith('slab_z')).map((p) => `previews/${p}`)]) {
      expect(readFileSync(join(dir, 'out2', f)).equals(readFileSync(join(dir, 'out1', f)))).toBe(true);
    }
    expect(readFileSync(join(dir, 'out2', 'report.html'), 'utf8')).toContain('truncated');
  }, 120_000);
});

describe('segment a DICOM series', () => {
  it('writes NIfTI and a valid DICOM SEG that land on the same voxels', async () => {
    const series = join(dir, 'series');
    execFileSync(PYTHON, [join(ORACLES, 'make_series.py'), series, 'mr']);
    const out = join(dir, 'out_dcm');
    const res = await segmentBatch([series], model, { outDir: out, modelName: 'brain', device: 'wasm', formats: ['nifti', 'dicom-seg'] });
    expect(res.done).toBe(1);
    const seg = join(out, 'series.seg.dcm');
    expect(existsSync(seg)).toBe(true);
    const v = spawnSync('dciodvfy', [seg], { encoding: 'utf8' });
    expect(`${v.stdout}${v.stderr}`).not.toMatch(/^Error/m);
    const read = pythonJson<{ centroids: Record<string, number[]>; counts: Record<string, number> }>(readFileSync(join(ORACLES, 'seg_read.py'), 'utf8'), [seg]);
    const nii = pythonJson<{ centroid: number[]; count: number }>(
      `import sys, json, numpy as np, nibabel as nib
a = nib.load(sys.argv[1]); ijk = np.argwhere(np.asarray(a.dataobj) > 0)
xyz = (a.affine[:3, :3] @ ijk.T).T + a.affine[:3, 3]
c = xyz.mean(0); print(json.dumps({'centroid': [-c[0], -c[1], c[2]], 'count': int(len(ijk))}))`,
      [join(out, 'series.seg.nii.gz')],
    );
    expect(read.counts['1']).toBe(nii.count);
    expect(nii.count).toBeGreaterThan(1000);
    for (let i = 0; i < 3; i++) expect(Math.abs(read.centroids['1']![i]! - nii.centroid[i]!)).toBeLessThan(1e-3);
  }, 180_000);
});
