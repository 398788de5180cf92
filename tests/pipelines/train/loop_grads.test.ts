/** The training loop's backward pass (freeing as it goes) gives tf.variableGrads's gradients exactly, and the AdamW
 *  update done one parameter at a time equals the textbook formula. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { variableGradsFreeing } from '../../../backbones/layers/recompute.ts';
import { selectDevice } from '../../../kernels/backend.ts';
import { buildTaskModel } from '../../../pipelines/task_model.ts';
import { specFromPreset } from '../../../pipelines/train/presets.ts';
import { diceCeLoss } from '../../../pipelines/train/seg_loss.ts';
import { AdamW, type AdamWConfig } from '../../../pipelines/train/optim.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

it('segmentation model: the freeing backward pass equals tf.variableGrads bit for bit', async () => {
  const m = buildTaskModel(specFromPreset('seg_test', 'segment', 't', ['bg', 'a']), 1);
  const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const labels = tf.oneHot(tf.cast(tf.greater(tf.randomUniform([2, 64, 64], 0, 1, 'float32', 8), 0.6), 'int32'), 2) as tf.Tensor4D;
  const f = () => diceCeLoss(m.predict(x), labels, 2);
  const vars = m.variables();
  const a = tf.variableGrads(f, vars);
  const before = tf.memory().numTensors;
  const b = variableGradsFreeing(f, vars);
  expect(Object.keys(b.grads).sort()).toEqual(Object.keys(a.grads).sort());
  expect(Object.keys(a.grads).length).toBe(vars.length);
  expect(b.value.dataSync()[0]).toBe(a.value.dataSync()[0]);
  for (const k of Object.keys(a.grads)) expect(Array.from(b.grads[k]!.dataSync())).toEqual(Array.from(a.grads[k]!.dataSync()));
  // what stays is the loss and one gradient per variable
  expect(tf.memory().numTensors - before).toBe(1 + vars.length);
  tf.dispose([x, labels, a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  m.dispose();
});

it('AdamW: two steps equal the formula (bias correction, decoupled decay on matrices only)', () => {
  const w = tf.variable(tf.tensor2d([[0.5, -1], [2, 0.25]]), true, 'w_adamw_test');
  const bias = tf.variable(tf.tensor1d([0.1, -0.2]), true, 'b_adamw_test');
  const cfg: AdamWConfig = { lr: 0.1, warmupSteps: 0, totalSteps: 1000, minLrRatio: 0.02, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05 };
  const opt = new AdamW(cfg);
  const gs = [[tf.tensor2d([[1, -2], [0.5, 0]]), tf.tensor1d([0.3, -0.1])], [tf.tensor2d([[-1, 1], [0.25, 2]]), tf.tensor1d([0.2, 0.4])]];
  const ref = { w: [0.5, -1, 2, 0.25], b: [0.1, -0.2], mw: [0, 0, 0, 0], vw: [0, 0, 0, 0], mb: [0, 0], vb: [0, 0] };
  const lrs: number[] = [];
  gs.forEach(([gw, gb], t) => {
    lrs.push(opt.apply(new Map<tf.Variable, tf.Tensor>([[w, gw!], [bias, gb!]])));
    const lr = lrs[t]!;
    const step = (p: number[], m: number[], v: number[], g: number[], decay: boolean) =>
      p.forEach((_, i) => {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * g[i]! ** 2;
        const u = m[i]! / (1 - 0.9 ** (t + 1)) / (Math.sqrt(v[i]! / (1 - 0.999 ** (t + 1))) + 1e-8);
        p[i] = p[i]! - (decay ? p[i]! * lr * 0.05 : 0) - lr * u;
      });
    step(ref.w, ref.mw, ref.vw, Array.from(gw!.dataSync()), true);
    step(ref.b, ref.mb, ref.vb, Array.from(gb!.dataSync()), false);
  });
  Array.from(w.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(ref.w[i]!, 5));
  Array.from(bias.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(ref.b[i]!, 5));
  tf.dispose([w, bias, ...gs.flat()]);
});

it('trainLoop (next batch made before the loss is read) ends at the weights of a plain step-by-step loop', async () => {
  const { trainLoop } = await import('../../../pipelines/train/loop.ts');
  const { restoreTrainTask, DENOISE_DEGRADE } = await import('../../../pipelines/train/restore_data.ts');
  const { Rng } = await import('../../../pipelines/train/rng.ts');
  const { ADAMW_DEFAULTS } = await import('../../../pipelines/train/optim.ts');
  const { tinyRestoreModel, expectSameTrainedWeights } = await import('../../_helpers/restore_model.ts');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const image = (seed: number) => {
    const clean = Float32Array.from({ length: 40 * 48 }, (_, i) => 0.5 + 0.4 * Math.sin(((i % 48) + seed) / 5) * Math.cos(Math.floor(i / 48) / 7));
    return { name: `im${seed}`, h: 40, w: 48, clean, levels: 255 };
  };
  const train = [image(1), image(2), image(3)];
  const task = restoreTrainTask(train, [image(4)], { batch: 2, patch: 32, stepsPerEpoch: 3, degrade: DENOISE_DEGRADE });
  const dir = mkdtempSync(join(tmpdir(), 'gv-loop-'));
  const a = tinyRestoreModel();
  const b = tinyRestoreModel();
  try {
    const optim = { lr: 3e-3 };
    await trainLoop(a, task, { outDir: dir, epochs: 2, seed: 9, resume: false, optim, card: { task: 'restore' } });
    // the same run as a plain loop: one batch, its step, its loss read, then the next
    const total = 6;
    const opt = new AdamW({ ...ADAMW_DEFAULTS, warmupSteps: Math.min(200, Math.ceil(total * 0.05)), ...optim, totalSteps: total });
    const rng = new Rng(9);
    const vars = b.variables();
    for (let s = 0; s < total; s++) {
      const { value, grads } = tf.variableGrads(task.batchLoss(b, rng), vars);
      await value.data();
      opt.apply(new Map(vars.map((v) => [v, grads[v.name]!])));
      tf.dispose([value, ...Object.values(grads)]);
    }
    opt.dispose();
    expectSameTrainedWeights(b, a);
  } finally {
    a.dispose();
    b.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

it('trainLoop keeps the last epoch\'s weights beside the best when the best came earlier, and only then', async () => {
  const { trainLoop } = await import('../../../pipelines/train/loop.ts');
  const { restoreTrainTask, DENOISE_DEGRADE } = await import('../../../pipelines/train/restore_data.ts');
  const { loadTaskModel } = await import('../../../pipelines/task_model.ts');
  const { tinyRestoreModel } = await import('../../_helpers/restore_model.ts');
  const { mkdtempSync, rmSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const clean = Float32Array.from({ length: 40 * 48 }, (_, i) => 0.5 + 0.4 * Math.sin((i % 48) / 5));
  const base = restoreTrainTask([{ name: 'a', h: 40, w: 48, clean, levels: 255 }], [], { batch: 2, patch: 32, stepsPerEpoch: 2, degrade: DENOISE_DEGRADE });
  for (const falling of [true, false]) {
    let epoch = 0;
    // validation scores that fall (the first epoch is best) or rise (the last is best)
    const task = { ...base, validate: async () => ({ score: falling ? -++epoch : ++epoch, metrics: {} }) };
    const dir = mkdtempSync(join(tmpdir(), 'gv-last-'));
    const m = tinyRestoreModel();
    try {
      const res = await trainLoop(m, task, { outDir: dir, epochs: 3, seed: 4, resume: false, optim: { lr: 3e-3 }, card: { task: 'restore' } });
      expect(res.bestEpoch).toBe(falling ? 1 : 3);
      expect(existsSync(join(dir, 'last', 'model.json'))).toBe(falling);
      if (!falling) continue;
      const last = await loadTaskModel(join(dir, 'last'));
      const best = await loadTaskModel(dir);
      const [wl, wb, wm] = [await last.exportWeights(), await best.exportWeights(), await m.exportWeights()];
      const same = (x: typeof wl, y: typeof wl) => [...x].every(([n, t]) => t.data.every((v, i) => v === y.get(n)!.data[i]));
      expect(same(wl, wm)).toBe(true);
      expect(same(wb, wm)).toBe(false);
      expect((last.manifest.card as { validation: { epoch: number } }).validation.epoch).toBe(3);
      last.dispose();
      best.dispose();
    } finally {
      m.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}, 120_000);
