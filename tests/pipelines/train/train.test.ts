/**
 * Training: AdamW and its schedule against the formulas; held-out slabs never reach a training stack; a run
 * killed after an epoch and resumed ends with exactly the weights of an uninterrupted run; the loss falls.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { writeNifti } from '../../../io/nifti/write.ts';
import type { Volume } from '../../../io/volume.ts';
import { selectDevice } from '../../../kernels/backend.ts';
import { AdamW, ADAMW_DEFAULTS, cosineLr } from '../../../pipelines/train/optim.ts';
import { loadSegDataset, splitCases } from '../../../pipelines/train/seg_data.ts';
import { trainSegment } from '../../../pipelines/train/segment.ts';
import { specFromPreset } from '../../../pipelines/train/presets.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

it('AdamW takes the decoupled-decay step of the formula', () => {
  const c = { ...ADAMW_DEFAULTS, lr: 0.1, weightDecay: 0.5, warmupSteps: 0, totalSteps: 10, minLrRatio: 0 };
  const p = tf.variable(tf.tensor2d([[1, -2], [3, 0.5]]));
  const g = tf.tensor2d([[0.5, 0.1], [-1, 2]]);
  const opt = new AdamW(c);
  const lr = opt.apply(new Map([[p, g]]));
  expect(lr).toBeCloseTo(0.1, 12);
  const pv = [1, -2, 3, 0.5];
  const gv = [0.5, 0.1, -1, 2];
  // step 1: m̂ = g, v̂ = g², update = g / (|g| + eps) → p − lr·wd·p − lr·sign(g)
  const want = pv.map((x, i) => x - lr * 0.5 * x - lr * (gv[i]! / (Math.abs(gv[i]!) + c.eps)));
  Array.from(p.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
  expect(cosineLr(5, c)).toBeCloseTo(0.05, 12);
  expect(cosineLr(10, c)).toBeCloseTo(0, 12);
  expect(cosineLr(0, { ...c, warmupSteps: 4 })).toBeCloseTo(0.025, 12);
  opt.dispose();
  tf.dispose([p, g]);
});

function dataset(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gv-train-'));
  mkdirSync(join(dir, 'imagesTr'));
  mkdirSync(join(dir, 'labelsTr'));
  const [nx, ny, nz] = [40, 36, 24];
  const affine = [[1.5, 0, 0, -30], [0, 1.5, 0, -27], [0, 0, 2, -24], [0, 0, 0, 1]];
  for (const [name, r] of [['a', 9], ['b', 12]] as const) {
    const img = new Float32Array(nx * ny * nz);
    const lab = new Uint8Array(nx * ny * nz);
    for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
      const d = Math.hypot(x - nx / 2, y - ny / 2, (z - nz / 2) * 1.3);
      const i = x + nx * (y + ny * z);
      img[i] = (d < r ? 100 : 10) + ((x * 7 + y * 13 + z * 3) % 11);
      lab[i] = d < r ? 1 : 0;
    }
    const base = { shape: [nx, ny, nz], spacing: [1.5, 1.5, 2], affine, meta: { format: 'nifti' as const, components: 'scalar' as const, warnings: [] } };
    writeFileSync(join(dir, 'imagesTr', `${name}_0000.nii.gz`), writeNifti({ ...base, data: img, dtype: 'float32' } as Volume, { gzip: true }));
    writeFileSync(join(dir, 'labelsTr', `${name}.nii.gz`), writeNifti({ ...base, data: lab, dtype: 'uint8' } as Volume, { gzip: true }));
  }
  return dir;
}

it('holds out slabs with a context gap', async () => {
  const spec = specFromPreset('seg_test', 'segment', 't', ['bg', 'fg']);
  const cases = await loadSegDataset(dataset(), spec.input);
  expect(cases.map((c) => c.name)).toEqual(['a', 'b']);
  const split = splitCases(cases, 1);
  for (const v of split.val) {
    const train = split.train.filter((t) => t.c === v.c).map((t) => t.z);
    for (const z of v.zs) for (const dz of [-1, 0, 1]) expect(train).not.toContain(z + dz);
    expect(v.zs.length).toBeGreaterThan(0);
  }
  expect(split.train.length + split.val.reduce((a, v) => a + v.zs.length, 0)).toBeLessThan(2 * 24);
});

it('resumes from a checkpoint to exactly the weights of an uninterrupted run, and the loss falls', async () => {
  const data = dataset();
  const common = { data, model: 'seg_test', name: 'r', epochs: 4, batch: 2, patch: 32, stepsPerEpoch: 2, seed: 5, lr: 3e-3 } as const;
  const straight = join(data, 'straight');
  const res = await trainSegment({ ...common, outDir: straight, resume: false });
  const killed = join(data, 'resumed');
  const stop = new AbortController();
  await trainSegment({ ...common, outDir: killed, resume: false, signal: stop.signal, log: (l) => l.startsWith('epoch 2/') && stop.abort() });
  const half = JSON.parse(readFileSync(join(killed, 'checkpoint', 'checkpoint.json'), 'utf8'));
  expect(half.epoch).toBe(2);
  await trainSegment({ ...common, outDir: killed, resume: true });
  const a = readFileSync(join(straight, 'checkpoint', 'checkpoint.safetensors'));
  const b = readFileSync(join(killed, 'checkpoint', 'checkpoint.safetensors'));
  expect(res.history.length).toBe(4);
  expect(Number(res.history[3]!.loss)).toBeLessThan(Number(res.history[0]!.loss));
  expect(b.equals(a)).toBe(true);
  const card = JSON.parse(readFileSync(join(straight, 'model.json'), 'utf8')).card;
  expect(card.training.preset).toBe('seg_test');
}, 240_000);

it('an unknown --model names the presets of its task, and a backbone name still builds', async () => {
  const { restoreSpec } = await import('../../../pipelines/train/restore_data.ts');
  expect(() => restoreSpec('denoise_vig_h_smal', 'x')).toThrow(/'denoise_vig_h_smal' is neither a restoration preset \(denoise_vig_h_small, denoise_vig_h_small_rb4, .*\) nor a backbone/);
  expect(() => specFromPreset('seg_vig_small', 'segment', 'x', ['bg', 'fg'])).toThrow(/'seg_vig_small' is neither a segmentation preset \(seg_vig_h_small, .*\) nor a backbone/);
  expect(restoreSpec('test_vig_h', 'x').backbone.arch).toBe('test_vig_h');
  expect(specFromPreset('test_vig_h', 'segment', 'x', ['bg', 'fg']).backbone.arch).toBe('test_vig_h');
});
