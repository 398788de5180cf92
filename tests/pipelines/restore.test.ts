/** restore: tiles that leave no seams, 8/16-bit and NIfTI dtype kept, metrics against references, a batch that goes on. */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInput } from '../../io/load.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { psnr } from '../../pipelines/metrics/restoration.ts';
import { restoreBatch, restoreFile } from '../../pipelines/restore.ts';
import type { TaskModel } from '../../pipelines/task_model.ts';
import { planTiles, runTiled, seamScore } from '../../pipelines/tiling.ts';
import { pythonJson } from '../_helpers/python.ts';
import { MRICRON, requireData, SKIMAGE_DATA } from '../_helpers/testdata.ts';
import { tinyRestoreModel } from '../_helpers/restore_model.ts';

let dir = '';
let inputs: { affine: number[][] };
let model: TaskModel;

beforeAll(async () => {
  await selectDevice('cpu');
  requireData(MRICRON);
  requireData(SKIMAGE_DATA);
  dir = mkdtempSync(join(tmpdir(), 'gv-restore-'));
  inputs = pythonJson(readFileSync(join(import.meta.dirname, '../_oracles/restore_inputs.py'), 'utf8'), [dir]);
  model = tinyRestoreModel();
}, 120_000);

afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Two 3×3 convs: receptive-field radius 2. */
function convModel(seed: number, layers = 2): (x: tf.Tensor4D) => tf.Tensor4D {
  const ks = Array.from({ length: layers }, (_, i) => tf.randomNormal([3, 3, i === 0 ? 2 : 4, i === layers - 1 ? 2 : 4], 0, 0.3, 'float32', seed + i) as tf.Tensor4D);
  return (x) => tf.tidy(() => ks.reduce((h, k, i) => (i < layers - 1 ? tf.relu(tf.conv2d(h, k, 1, 'same')) : tf.conv2d(h, k, 1, 'same')) as tf.Tensor4D, x));
}

function smoothImage(h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(h * w * c);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let k = 0; k < c; k++) out[(i * w + j) * c + k] = Math.sin(i / 5 + k) * Math.cos(j / 7);
  return out;
}

describe('tiling', () => {
  const [h, w] = [45, 61];
  const img = smoothImage(h, w, 2);

  it('equals whole-image inference when the margin covers the receptive field', async () => {
    const m = convModel(1);
    const whole = (await runTiled(img, h, w, 2, m)).out;
    const plan = planTiles(h, w, { tile: 24, overlap: 8 });
    expect(plan.ys.length * plan.xs.length).toBeGreaterThan(4);
    expect(plan.margin).toBeGreaterThanOrEqual(2);
    const tiled = (await runTiled(img, h, w, 2, m, { tile: 24, overlap: 8 })).out;
    let max = 0;
    for (let i = 0; i < whole.length; i++) max = Math.max(max, Math.abs(whole[i]! - tiled[i]!));
    expect(max).toBeLessThan(1e-5);
    // without overlap the tiles see zero padding at their edges: the comparison above would catch that
    const hard = (await runTiled(img, h, w, 2, m, { tile: 24, overlap: 0 })).out;
    let hardMax = 0;
    for (let i = 0; i < whole.length; i++) hardMax = Math.max(hardMax, Math.abs(whole[i]! - hard[i]!));
    expect(hardMax).toBeGreaterThan(1e-2);
  });

  it('leaves no seam when the receptive field is larger than the margin', async () => {
    const m = convModel(5, 6); // radius 6 > margin 2
    const whole = (await runTiled(img, h, w, 2, m)).out;
    const cuts = (starts: number[], size: number) => starts.flatMap((s) => [s, s + size]);
    const p = planTiles(h, w, { tile: 24, overlap: 8 });
    const cols = cuts(p.xs, p.tw);
    const rows = cuts(p.ys, p.th);
    const base = seamScore(whole, h, w, 2, cols, rows);
    const blended = seamScore((await runTiled(img, h, w, 2, m, { tile: 24, overlap: 8 })).out, h, w, 2, cols, rows);
    const ph = planTiles(h, w, { tile: 24, overlap: 0 });
    const hard = seamScore((await runTiled(img, h, w, 2, m, { tile: 24, overlap: 0 })).out, h, w, 2, cuts(ph.xs, ph.tw), cuts(ph.ys, ph.th));
    const hardBase = seamScore(whole, h, w, 2, cuts(ph.xs, ph.tw), cuts(ph.ys, ph.th));
    // blended: the steps across tile borders are those of the untiled output (within 10 %); butted tiles: > 2x
    expect(Math.abs(blended - base)).toBeLessThan(0.1 * base);
    expect(hard).toBeGreaterThan(2 * hardBase);
  });
});

describe('restore files', () => {
  it('keeps 8-bit PNG as 8-bit and 16-bit as 16-bit, and restores both alike', async () => {
    const out = join(dir, 'out_png');
    const r8 = await restoreFile(join(dir, 'noisy/cam.png'), out, model);
    const r16 = await restoreFile(join(dir, 'noisy/cam16.png'), out, model);
    expect(r8.outputs).toEqual(['cam.png']);
    expect(r16.outputs).toEqual(['cam16.png']);
    const [a, b, src] = await Promise.all([join(out, 'cam.png'), join(out, 'cam16.png'), join(dir, 'noisy/cam.png')].map(async (p) => (await loadInput(p, { sandbox: false })).volumes[0]!));
    expect(a!.dtype).toBe('uint8');
    expect(b!.dtype).toBe('uint16');
    expect(a!.shape.slice(0, 2)).toEqual([96, 64]);
    let maxDiff = 0;
    let changed = 0;
    for (let i = 0; i < a!.data.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs((b!.data[i] as number) / 257 - (a!.data[i] as number)));
      if (a!.data[i] !== src!.data[i]) changed++;
    }
    // same normalised input, so the same result up to 8-bit rounding
    expect(maxDiff).toBeLessThan(1.01);
    expect(changed).toBeGreaterThan(a!.data.length / 4);
    // 16-bit output is not just 8-bit values scaled up
    expect(Array.from(b!.data).some((v) => v % 257 !== 0)).toBe(true);
  });

  it('keeps a NIfTI volume on its grid and in its dtype, slice by slice', async () => {
    const out = join(dir, 'out_nii');
    const r = await restoreFile(join(dir, 'noisy/brain.nii.gz'), out, model);
    expect(r.outputs).toEqual(['brain.nii.gz']);
    const [v, src] = await Promise.all([join(out, 'brain.nii.gz'), join(dir, 'noisy/brain.nii.gz')].map(async (p) => (await loadInput(p, { sandbox: false })).volumes[0]!));
    expect(v!.dtype).toBe('int16');
    expect(v!.shape).toEqual([48, 40, 3]);
    for (let r2 = 0; r2 < 3; r2++) for (let c = 0; c < 4; c++) expect(v!.affine[r2]![c]).toBeCloseTo(inputs.affine[r2]![c]!, 5);
    let lo = Infinity;
    for (let i = 0; i < v!.data.length; i++) lo = Math.min(lo, v!.data[i] as number);
    expect(lo).toBeLessThan(0); // negative values survive (the crop was shifted by -300)
    expect(psnr(src!.data, v!.data, 65535)).toBeGreaterThan(30); // restored, not garbage
  });

  it('reports PSNR/SSIM against references and records a rejected input without stopping', async () => {
    const out = join(dir, 'out_batch');
    const s = await restoreBatch(['cam.png', 'brain.nii.gz', 'notes.txt'].map((f) => join(dir, 'noisy', f)), model, { outDir: out, refDir: join(dir, 'clean'), modelName: 'restore_test', device: 'cpu' });
    expect(s.total).toBe(3);
    expect(s.done).toBe(2);
    expect(s.rejected).toBe(1);
    const cam = s.records.find((r) => r.input.endsWith('cam.png'))!;
    expect(cam.metrics).toBeDefined();
    const [restored, clean] = await Promise.all([join(out, 'cam.png'), join(dir, 'clean/cam.png')].map(async (p) => (await loadInput(p, { sandbox: false })).volumes[0]!));
    expect(cam.metrics!.psnr).toBeCloseTo(psnr(clean!.data, restored!.data, 255), 8);
    expect(Number.isFinite(cam.metrics!.inputPsnr)).toBe(true);
    expect(s.metrics?.cases).toBe(1);
    const lines = readFileSync(s.manifest, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { status: string; input: string });
    expect(lines.find((l) => l.input.endsWith('notes.txt'))?.status).toBe('rejected');
  });

  it('--resume skips inputs done with the same settings and redoes those made with other tiles or --tta', async () => {
    const out = join(dir, 'out_resume');
    const inputs = [join(dir, 'noisy', 'cam.png')];
    const base = { outDir: out, modelName: 'restore_test', device: 'cpu', resume: true };
    expect(await restoreBatch(inputs, model, base)).toMatchObject({ done: 1, skipped: 0 });
    expect(await restoreBatch(inputs, model, base)).toMatchObject({ done: 0, skipped: 1 });
    expect(await restoreBatch(inputs, model, { ...base, tile: 64 })).toMatchObject({ done: 1, skipped: 0 });
    expect(await restoreBatch(inputs, model, { ...base, tile: 64, overlap: 16 })).toMatchObject({ done: 1, skipped: 0 });
    expect(await restoreBatch(inputs, model, { ...base, tile: 64, overlap: 16 })).toMatchObject({ done: 0, skipped: 1 });
    const tta = await restoreBatch(inputs, model, { ...base, tile: 64, overlap: 16, tta: true });
    expect(tta).toMatchObject({ done: 1, skipped: 0 });
    expect(tta.records[0]!.settings).toEqual({ weights: model.sha256, tile: 64, overlap: 16, localPooling: null, tta: true });
  });
});
