/**
 * `segment` reading a plain DICOM series slice by slice: the same label file, DICOM SEG and previews as reading it whole,
 * for an axial MR series (x and y flipped onto the model's grid), a CT series with an intercept whose positions
 * fall, and a series whose z axis is flipped too; the plan made without voxels says exactly what the loader says
 * (geometry, type, meta, warnings, rejected files) and its slices are the loader's volume flipped. A JPEG-LS copy
 * and a series with a missing slice go the whole way and still work; a series whose files shrink while it is
 * segmented fails with a typed error and the batch goes on.
 */
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../core/limits.ts';
import { planDicomStream, type DicomStreamPlan } from '../../io/dicom/stream_plan.ts';
import { loadInputDirect } from '../../io/load.ts';
import { readNifti } from '../../io/nifti/read.ts';
import { axisMapTo, flipInPlace, reorient } from '../../io/orient.ts';
import { selectDevice } from '../../kernels/backend.ts';
import type { Normalization } from '../../pipelines/preprocess.ts';
import { segmentBatch, segmentVolume, type SegFormat } from '../../pipelines/segment.ts';
import { dicomSource } from '../../pipelines/slice_source.ts';
import { buildTaskModel, type TaskModel } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';
import { ORACLES_ON_PATH, runPython } from '../_helpers/python.ts';

const root = mkdtempSync(join(tmpdir(), 'gv-segdicom-'));
const N = 10;
const ROWS = 34;
const COLS = 40;
const ZSCORE: Normalization = { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 };

// N slices with a bright disc that grows along z over a noisy background; BitsStored `bits` with junk in the
// unused high bits (which the reader must mask); file names shuffled; `step` < 0: positions falling; `skip`
// leaves a slice out; an intercept makes it CT; `iop` other than axial flips other axes
const MAKE = `
import os, sys
import numpy as np
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out, step, skip, signed, bits, intercept, iop = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(5)
series = generate_uid()
order = rng.permutation(${N})
y, x = np.mgrid[0:${ROWS}, 0:${COLS}]
for k in range(${N}):
    if k == skip:
        continue
    disc = (x - ${COLS} * 0.6) ** 2 + (y - ${ROWS} * 0.4) ** 2 < 40 + 12 * k
    v = np.where(disc, 900, 200) + rng.integers(0, 120, size=(${ROWS}, ${COLS})) + 7 * x
    if signed:
        v = v - 600
    px = ((v & (2 ** bits - 1)) | (rng.integers(0, 2 ** (16 - bits), size=v.shape) << bits)).astype('<u2')
    ds = axial_slice(series, step * k, px, 0.8, modality='CT' if intercept != 'none' else 'MR', bits_stored=bits, signed=signed,
                     intercept=None if intercept == 'none' else float(intercept))
    ds.ImageOrientationPatient = [float(c) for c in iop.split(',')]
    ds.save_as(os.path.join(out, f'f{order[k]:03d}.dcm'), write_like_original=False)
`;

function make(name: string, o: { step?: number; skip?: number; signed?: 0 | 1; bits?: number; intercept?: number; iop?: string } = {}): string {
  const dir = join(root, name);
  runPython(MAKE, [dir, String(o.step ?? 2), String(o.skip ?? -1), String(o.signed ?? 0), String(o.bits ?? 16), o.intercept === undefined ? 'none' : String(o.intercept), o.iop ?? '1,0,0,0,1,0']);
  return dir;
}

function model(norm: Normalization, seed: number): TaskModel {
  const spec = specFromPreset('seg_test', 'segment', 'dicomstream', ['background', 'blob']);
  const m = buildTaskModel({ ...spec, input: { ...spec.input, normalization: norm, spacing: [1.2, 1.2] }, postprocess: { largestComponent: true, fillHoles: true } }, seed);
  // larger random weights, so that both classes win somewhere
  for (const v of m.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', seed)));
  return m;
}

function files(d: string): string[] {
  return readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.jsonl') && !e.name.endsWith('.html')).map((e) => join(e.parentPath, e.name).slice(d.length + 1)).sort();
}

let dirs: Record<string, string>;
beforeAll(async () => {
  await selectDevice('cpu');
  dirs = {
    mr: make('mr', { signed: 1, bits: 16 }),
    // CT, positions falling: 12 bits signed + -1024 fits int16 whatever the values, so the intercept is added as read
    ct: make('ct', { step: -2.5, signed: 1, bits: 12, intercept: -1024 }),
    // x already runs to the right, y and z (the normal points down) are flipped; 12 bits unsigned, junk above
    zflip: make('zflip', { bits: 12, iop: '-1,0,0,0,1,0' }),
    gap: make('gap', { signed: 1, skip: 4 }),
  };
  writeFileSync(join(dirs.mr!, 'notes.txt'), 'not an image\n');
  const ls = join(root, 'jpegls');
  mkdirSync(ls);
  for (const f of readdirSync(dirs.ct!)) execFileSync('dcmcjpls', [join(dirs.ct!, f), join(ls, f)]);
  dirs.jpegls = ls;
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the plan of a DICOM series without its voxels', () => {
  it('says what the loader says, and its slices are the loader\'s volume on the model\'s grid', async () => {
    for (const name of ['mr', 'ct', 'zflip']) {
      const plan = (await planDicomStream(dirs[name]!, DEFAULT_LIMITS)) as DicomStreamPlan;
      expect(plan.streamable, name).toBe(true);
      const loaded = await loadInputDirect(dirs[name]!, { sandbox: false });
      const vol = loaded.volumes[0]!;
      const { data, ...head } = vol;
      expect({ ...plan.header, data: undefined }, name).toEqual({ ...head, data: undefined });
      expect(plan.warnings).toEqual(loaded.warnings);
      expect(plan.rejected).toEqual(loaded.rejected);
      expect(plan.slices.length).toBe(N);
      // as read, and flipped onto the RAS grid as the whole path's reorientation does it
      const asStored = dicomSource(plan).read(0, N);
      expect(Array.from(asStored)).toEqual(Array.from(data));
      const map = axisMapTo(vol.affine);
      expect(map.perm).toEqual([0, 1, 2]);
      const canon = dicomSource(plan, map.flip).read(0, N).slice();
      expect(Array.from(canon)).toEqual(Array.from(reorient(vol, map).data));
      // and flipping the canonical grid in place gives the stored one back
      flipInPlace(canon, vol.shape, map.flip);
      expect(Array.from(canon)).toEqual(Array.from(data));
    }
    const mr = (await planDicomStream(dirs.mr!, DEFAULT_LIMITS)) as DicomStreamPlan;
    expect(mr.rejected).toEqual([expect.objectContaining({ name: 'notes.txt', code: 'not_dicom' })]);
    const ct = (await planDicomStream(dirs.ct!, DEFAULT_LIMITS)) as DicomStreamPlan;
    expect([ct.stored, ct.header.dtype, ct.add, ct.header.meta.rescale]).toEqual(['int16', 'int16', -1024, undefined]);
    expect(axisMapTo((await planDicomStream(dirs.zflip!, DEFAULT_LIMITS) as DicomStreamPlan).header.affine).flip).toEqual([false, true, true]);
  });

  it('is refused for a compressed series, a missing slice, or a file that is not a folder', async () => {
    for (const name of ['jpegls', 'gap']) expect((await planDicomStream(dirs[name]!, DEFAULT_LIMITS)).streamable, name).toBe(false);
    expect((await planDicomStream(join(dirs.mr!, 'notes.txt'), DEFAULT_LIMITS)).streamable).toBe(false);
  });

  it('fails a read as truncated when a file shrinks after planning', async () => {
    const copy = join(root, 'shrinks');
    mkdirSync(copy);
    for (const f of readdirSync(dirs.mr!)) writeFileSync(join(copy, f), readFileSync(join(dirs.mr!, f)));
    const plan = (await planDicomStream(copy, DEFAULT_LIMITS)) as DicomStreamPlan;
    const src = dicomSource(plan);
    expect(src.read(0, N).length).toBe(N * ROWS * COLS);
    // a plan that does not fit its own volume is refused before any read
    expect(() => dicomSource({ ...plan, slices: plan.slices.slice(1) })).toThrow(/does not fit/);
    expect(() => dicomSource({ ...plan, slices: plan.slices.map((s) => ({ ...s, bytes: s.bytes + 2 })) })).toThrow(/does not fit/);
    truncateSync(plan.slices[3]!.path, plan.slices[3]!.fileSize - 10);
    expect(src.read(0, 3).length).toBe(3 * ROWS * COLS);
    expect(() => src.read(2, 5)).toThrow(expect.objectContaining({ code: 'truncated' }));
  });
});

describe('segment reading a DICOM series slice by slice', () => {
  it('writes the same files as reading it whole', async () => {
    const cases: [string, Normalization][] = [
      ['mr', ZSCORE],
      ['ct', { kind: 'window', lo: -500, hi: 300 }],
      ['zflip', ZSCORE],
    ];
    for (const [i, [name, norm]] of cases.entries()) {
      const m = model(norm, 21 + i);
      for (const report of [true, false]) {
        const out = (mode: string) => join(root, `out-${name}-${mode}-${report}`);
        const formats: SegFormat[] = ['nifti', 'dicom-seg'];
        const whole = await segmentBatch([dirs[name]!], m, { outDir: out('whole'), modelName: 'dicomstream', device: 'cpu', report, formats, streamInput: false });
        const streamed = await segmentBatch([dirs[name]!], m, { outDir: out('streamed'), modelName: 'dicomstream', device: 'cpu', report, formats });
        expect([whole.done, streamed.done], name).toEqual([1, 1]);
        expect(whole.records[0]!.inputRead).toBe('whole');
        expect(streamed.records[0]!.inputRead).toBe('streamed');
        const names = files(out('streamed'));
        expect(names).toEqual(files(out('whole')));
        // the label file and the DICOM SEG, and with a report the previews
        expect(names.filter((f) => f.startsWith('previews/')).length).toBe(report ? names.length - 2 : 0);
        expect(names).toContain(`${name}.seg.dcm`);
        for (const f of names) expect(Buffer.compare(readFileSync(join(out('streamed'), f)), readFileSync(join(out('whole'), f))), `${name} ${f}`).toBe(0);
        const line = JSON.parse(readFileSync(join(out('streamed'), 'manifest.jsonl'), 'utf8').trim().split('\n').pop()!);
        expect(line.inputRead).toBe('streamed');
        // real masks on the source grid, not two empty ones
        const labels = readNifti(readFileSync(join(out('streamed'), `${name}.seg.nii.gz`)), { limits: DEFAULT_LIMITS }, 'labels');
        expect(labels.shape).toEqual([COLS, ROWS, N]);
        expect(new Set(labels.data).size, name).toBe(2);
      }
      m.dispose();
    }
  }, 120_000);

  it('gives labels on the source grid that are those of the same volume stored on the model\'s grid, flipped back', async () => {
    const m = model(ZSCORE, 23);
    for (const name of ['mr', 'zflip']) {
      const vol = (await loadInputDirect(dirs[name]!, { sandbox: false })).volumes[0]!;
      const map = axisMapTo(vol.affine);
      expect(map.flip.some(Boolean)).toBe(true);
      const onGrid = reorient(vol, map);
      const flipped = await segmentVolume(vol, m, { consumeInput: true });
      const direct = await segmentVolume(onGrid, m);
      expect(new Set(direct.labels.data).size, name).toBe(2);
      expect(flipped.labels.affine).toEqual(vol.affine);
      // reorient (a copy) takes the flipped-in-place labels to the model's grid: they must be the direct ones
      expect(Array.from(reorient(flipped.labels, map).data), name).toEqual(Array.from(direct.labels.data));
    }
    m.dispose();
  }, 60_000);

  it('takes the whole path for a JPEG-LS copy (same labels) and a series with a missing slice', async () => {
    const m = model({ kind: 'window', lo: -500, hi: 300 }, 22);
    const res = await segmentBatch([dirs.jpegls!, dirs.gap!], m, { outDir: join(root, 'out-whole-kinds'), modelName: 'dicomstream', device: 'cpu', report: false });
    expect(res.records.map((r) => [r.status, r.inputRead])).toEqual([
      ['done', 'whole'],
      ['done', 'whole'],
    ]);
    const plain = await segmentBatch([dirs.ct!], m, { outDir: join(root, 'out-plain-ct'), modelName: 'dicomstream', device: 'cpu', report: false });
    expect(plain.records[0]!.inputRead).toBe('streamed');
    expect(Buffer.compare(readFileSync(join(root, 'out-whole-kinds', 'jpegls.seg.nii.gz')), readFileSync(join(root, 'out-plain-ct', 'ct.seg.nii.gz')))).toBe(0);
    m.dispose();
  }, 60_000);

  it('rejects a series whose files shrink while it is segmented, and goes on with the next', async () => {
    const m = model(ZSCORE, 4);
    const copy = join(root, 'a-shrinking');
    mkdirSync(copy);
    for (const f of readdirSync(dirs.mr!)) writeFileSync(join(copy, f), readFileSync(join(dirs.mr!, f)));
    let cut = false;
    // after the first group of slices, every file of the first series loses its end: the next read of it fails
    const onSlices = (_d: number, _t: number, name: string) => {
      if (cut || name !== 'a-shrinking') return;
      cut = true;
      for (const f of readdirSync(copy)) if (f.endsWith('.dcm')) truncateSync(join(copy, f), 2000);
    };
    const res = await segmentBatch([copy, dirs.zflip!], m, { outDir: join(root, 'out-shrink'), modelName: 'dicomstream', device: 'cpu', report: true, onSlices });
    expect(cut).toBe(true);
    expect(res.records.map((r) => [r.status, r.code ?? null])).toEqual([
      ['rejected', 'truncated'],
      ['done', null],
    ]);
    expect(res.records[1]!.inputRead).toBe('streamed');
    m.dispose();
  }, 60_000);
});
