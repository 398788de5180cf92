/** Restore training pieces: FFT loss vs numpy, noise statistics, and a tiny model whose loss falls in a few CPU steps. */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../../kernels/backend.ts';
import { buildTaskModel } from '../../../pipelines/task_model.ts';
import { trainLoop } from '../../../pipelines/train/loop.ts';
import { degrade, loadRestoreDataset, makeRestoreBatch, restoreSpec, restoreTrainTask, splitImages, DENOISE_DEGRADE } from '../../../pipelines/train/restore_data.ts';
import { charbonnier, fftL1, restoreLoss } from '../../../pipelines/train/restore_loss.ts';
import { Rng } from '../../../pipelines/train/rng.ts';
import { pythonJson } from '../../_helpers/python.ts';
import { requireData, SKIMAGE_DATA } from '../../_helpers/testdata.ts';

const SCRIPT = readFileSync(join(import.meta.dirname, '../../_oracles/restore_train.py'), 'utf8');
let dir = '';

beforeAll(async () => {
  await selectDevice('cpu');
  requireData(SKIMAGE_DATA);
  dir = mkdtempSync(join(tmpdir(), 'gv-rtrain-'));
  pythonJson(SCRIPT, [dir], { input: JSON.stringify({ a: [0], b: [0], shape: [1, 1, 1, 1] }) }); // writes the training crops
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('restore losses', () => {
  it('the FFT term equals numpy fft2 (orthonormal), Charbonnier is smooth L1', () => {
    const shape: [number, number, number, number] = [2, 6, 10, 1];
    const a = tf.randomNormal(shape, 0, 1, 'float32', 1) as tf.Tensor4D;
    const b = tf.randomNormal(shape, 0, 1, 'float32', 2) as tf.Tensor4D;
    const o = pythonJson<{ fft: number }>(SCRIPT, [dir], { input: JSON.stringify({ a: Array.from(a.dataSync()), b: Array.from(b.dataSync()), shape }) });
    expect(fftL1(a, b).dataSync()[0]).toBeCloseTo(o.fft, 4);
    const d = tf.sub(a, b);
    expect(charbonnier(a, b, 1e-3).dataSync()[0]).toBeCloseTo(tf.mean(tf.abs(d)).dataSync()[0]!, 3);
    expect(charbonnier(a, a, 1e-3).dataSync()[0]).toBeCloseTo(1e-3, 6);
  });
});

describe('degradation', () => {
  it('Gaussian noise has the drawn σ; Rician noise on black has mean σ·√(π/2)', () => {
    const n = 128 * 128;
    const grey = new Float32Array(n).fill(0.5);
    const g = degrade(grey, 128, 128, { sigma: [25, 25], ricianP: 0, blurP: 0, blurSigma: [1, 1] }, new Rng(3));
    const mean = g.reduce((s, v) => s + v, 0) / n;
    const sd = Math.sqrt(g.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
    expect(mean).toBeCloseTo(0.5, 2);
    expect(sd * 255).toBeGreaterThan(24);
    expect(sd * 255).toBeLessThan(26);
    const r = degrade(new Float32Array(n), 128, 128, { sigma: [25, 25], ricianP: 1, blurP: 0, blurSigma: [1, 1] }, new Rng(4));
    expect((r.reduce((s, v) => s + v, 0) / n) * 255).toBeCloseTo(25 * Math.sqrt(Math.PI / 2), 0);
    expect(Math.min(...r)).toBeGreaterThanOrEqual(0);
  });

  it('stored in an 8-bit type: rounded to 1/255 steps and clipped, so black rises by σ/√(2π) and white falls by it', () => {
    const n = 128 * 128;
    const cfg = { sigma: [25, 25] as [number, number], ricianP: 0, blurP: 0, blurSigma: [1, 1] as [number, number], store: true };
    const black = degrade(new Float32Array(n), 128, 128, cfg, new Rng(5), 255);
    const white = degrade(new Float32Array(n).fill(1), 128, 128, cfg, new Rng(6), 255);
    for (const x of [black, white]) {
      expect(x.every((v) => v >= 0 && v <= 1 && Math.abs(v * 255 - Math.round(v * 255)) < 1e-4)).toBe(true);
    }
    const half = 25 / Math.sqrt(2 * Math.PI);
    expect((black.reduce((s, v) => s + v, 0) / n) * 255).toBeCloseTo(half, 0);
    expect((1 - white.reduce((s, v) => s + v, 0) / n) * 255).toBeCloseTo(half, 0);
    // no levels (a volume scaled by its own range): nothing is clipped, the mean on black stays 0
    const free = degrade(new Float32Array(n), 128, 128, cfg, new Rng(5));
    expect(Math.min(...free)).toBeLessThan(0);
    expect(Math.abs((free.reduce((s, v) => s + v, 0) / n) * 255)).toBeLessThan(0.5);
  });
});

describe('training patches', () => {
  // every pixel of a 16x16 plane distinct, and each image offset by its own constant, so a patch names its source
  const plane = (h: number, w: number, base: number) => Float32Array.from({ length: h * w }, (_, i) => base + i / (h * w * 10));
  const quiet = { sigma: [0, 0] as [number, number], ricianP: 0, blurP: 0, blurSigma: [0, 0] as [number, number] };

  it('area sampling draws images in proportion to their pixels; image sampling draws each equally often', () => {
    const images = [{ name: 'small', h: 16, w: 16, clean: plane(16, 16, 0) }, { name: 'large', h: 48, w: 16, clean: plane(48, 16, 1) }];
    const share = (sample: 'image' | 'area') => {
      const { y } = makeRestoreBatch(images, 4000, 16, quiet, new Rng(7), sample);
      let large = 0;
      for (let b = 0; b < 4000; b++) if (y[b * 256]! >= 1) large++;
      return large / 4000;
    };
    expect(share('area')).toBeGreaterThan(0.72);
    expect(share('area')).toBeLessThan(0.78);
    expect(share('image')).toBeGreaterThan(0.47);
    expect(share('image')).toBeLessThan(0.53);
  });

  it('each patch is one of the eight flips and quarter turns of its crop, and all eight occur', () => {
    const P = 16;
    const src = plane(P, P, 0);
    const at = (i: number, j: number) => src[i * P + j]!;
    const m = P - 1;
    // the dihedral group written out as (row, column) maps of the output
    const maps: Array<(i: number, j: number) => number> = [
      (i, j) => at(i, j), (i, j) => at(i, m - j), (i, j) => at(m - i, j), (i, j) => at(m - i, m - j),
      (i, j) => at(j, i), (i, j) => at(j, m - i), (i, j) => at(m - j, i), (i, j) => at(m - j, m - i),
    ];
    const { x, y } = makeRestoreBatch([{ name: 'a', h: P, w: P, clean: src }], 200, P, quiet, new Rng(11));
    const seen = new Set<number>();
    for (let b = 0; b < 200; b++) {
      const k = maps.findIndex((f) => {
        for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) if (y[b * P * P + i * P + j] !== f(i, j)) return false;
        return true;
      });
      expect(k).toBeGreaterThanOrEqual(0);
      seen.add(k);
      for (let q = 0; q < P * P; q++) expect(x[b * P * P + q]).toBe(y[b * P * P + q]); // σ 0: input = target, oriented alike
    }
    expect(seen.size).toBe(8);
  });
});

describe('train --task restore', () => {
  it('a tiny model lowers the loss in a few CPU steps and validates by PSNR', async () => {
    const images = await loadRestoreDataset(dir);
    expect(images.map((i) => i.name)).toEqual(['camera.png', 'coins.png', 'moon.png', 'page.png']);
    expect(images[0]!.clean.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(images.map((i) => i.levels)).toEqual([255, 255, 255, 255]);
    const { train, val } = splitImages(images);
    expect(val.length).toBe(1);
    expect(train).not.toContain(val[0]);
    const { x, y } = makeRestoreBatch(train, 2, 32, DENOISE_DEGRADE, new Rng(5));
    expect(x.length).toBe(2 * 32 * 32);
    expect(x.some((v, i) => v !== y[i])).toBe(true);
    const model = buildTaskModel(restoreSpec('restore_test', 'rt'), 1);
    const sigma25 = { ...DENOISE_DEGRADE, sigma: [25, 25] as [number, number], ricianP: 0 };
    // one fixed batch, scored before and after: batch-to-batch noise cannot fake a falling loss
    const fixed = makeRestoreBatch(train, 4, 32, sigma25, new Rng(9));
    const lossOn = () => tf.tidy(() => restoreLoss(model.predict(tf.tensor4d(fixed.x, [4, 32, 32, 1])), tf.tensor4d(fixed.y, [4, 32, 32, 1])).dataSync()[0]!);
    const before = lossOn();
    try {
      const res = await trainLoop(model, restoreTrainTask(train, val, { batch: 2, patch: 32, stepsPerEpoch: 24, degrade: sigma25 }), { outDir: join(dir, 'model'), epochs: 1, seed: 1, resume: false, optim: { lr: 3e-3 }, card: { task: 'restore' } });
      const after = lossOn();
      expect(after).toBeLessThan(0.99 * before);
      const [e1] = res.history as Array<{ psnr: number; inputPsnr: number }>;
      // an untrained residual head is the identity: a PSNR above the noisy input's means it learnt to denoise
      expect(e1!.psnr).toBeGreaterThan(e1!.inputPsnr);
    } finally {
      model.dispose();
    }
  }, 120_000);
});
