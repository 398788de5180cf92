/**
 * --ema: the average against a hand computation (warm start included), validation and the saved models on the
 * averaged weights while the raw weights train exactly as without it, no tensors left behind, and a run resumed
 * from its checkpoint ending with the same average and best model as an uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { selectDevice } from '../../../kernels/backend.ts';
import { loadTaskModel, type TaskModel } from '../../../pipelines/task_model.ts';
import { emaDecay, WeightEma } from '../../../pipelines/train/ema.ts';
import { runLoopOptions, trainLoop, type LoopOptions, type TrainTask } from '../../../pipelines/train/loop.ts';
import { DENOISE_DEGRADE, restoreTrainTask } from '../../../pipelines/train/restore_data.ts';
import { expectSameTrainedWeights, tinyRestoreModel } from '../../_helpers/restore_model.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'gv-ema-'));
  dirs.push(d);
  return d;
}

function image(seed: number) {
  const clean = Float32Array.from({ length: 40 * 48 }, (_, i) => 0.5 + 0.4 * Math.sin(((i % 48) + seed) / 5) * Math.cos(Math.floor(i / 48) / 7));
  return { name: `im${seed}`, h: 40, w: 48, clean, levels: 255 };
}

/** A restore task of `steps` steps per epoch, validated by PSNR on one held-out image. */
function tinyTask(steps: number): TrainTask {
  return restoreTrainTask([image(1), image(2), image(3)], [image(4)], { batch: 2, patch: 32, stepsPerEpoch: steps, degrade: DENOISE_DEGRADE });
}

const snapshot = (m: TaskModel) => m.variables().map((v) => Float32Array.from(v.dataSync()));
const maxDiff = (a: Float32Array[] | number[][], b: Float32Array[] | number[][]) => Math.max(...a.map((x, i) => Math.max(...Array.from(x, (v, j) => Math.abs(v - b[i]![j]!)))));

/** The average by hand in float64: `weights[0]` the start, then the weights after each step; `d(k)` the decay of update k. */
function handEma(weights: Float32Array[][], d: (k: number) => number): number[][] {
  let e = weights[0]!.map((w) => Array.from(w));
  for (let k = 0; k + 1 < weights.length; k++) e = e.map((x, i) => x.map((v, j) => d(k) * v + (1 - d(k)) * weights[k + 1]![i]![j]!));
  return e;
}

describe('WeightEma', () => {
  it('three updates equal the formula with the warm start, for a decay the warm start caps and one it does not', async () => {
    const a = tf.variable(tf.tensor2d([[1, -2], [3, 0.5]]), true, 'ema_unit_a');
    const b = tf.variable(tf.tensor1d([0.25, -4]), true, 'ema_unit_b');
    const set = (v: tf.Variable, x: number[]) => tf.tidy(() => v.assign(tf.tensor(x, v.shape)));
    const before = tf.memory().numTensors;
    const steps = [[[2, 0, 1, 1], [1, -1]], [[-1, 3, 2, 0], [0, 2]], [[0.5, 0.5, -3, 4], [8, 1]]];
    // 0.999: every update takes the warm-start decay, 0.1, 2/11, 3/12; 0.2 caps the last one at 0.2
    const want = {
      0.999: [1 / 10, 2 / 11, 3 / 12],
      0.2: [1 / 10, 2 / 11, 0.2],
    };
    for (const [decay, ds] of Object.entries(want)) {
      set(a, [1, -2, 3, 0.5]);
      set(b, [0.25, -4]);
      const ema = new WeightEma([a, b], Number(decay));
      ds.forEach((d, k) => expect(emaDecay(Number(decay), k)).toBeCloseTo(d, 15));
      let ea = [1, -2, 3, 0.5];
      let eb = [0.25, -4];
      for (const [k, [wa, wb]] of steps.entries()) {
        set(a, wa!);
        set(b, wb!);
        ema.update([a, b]);
        const d = ds[k]!;
        ea = ea.map((x, i) => d * x + (1 - d) * wa![i]!);
        eb = eb.map((x, i) => d * x + (1 - d) * wb![i]!);
      }
      expect(ema.step).toBe(3);
      const model = { variables: () => [a, b], replays: { dispose: () => undefined } } as unknown as TaskModel;
      const raw = [a.dataSync().slice(), b.dataSync().slice()];
      const [sa, sb] = await ema.withEmaWeights(model, async () => [Array.from(a.dataSync()), Array.from(b.dataSync())]);
      sa!.forEach((x, i) => expect(x).toBeCloseTo(ea[i]!, 6));
      sb!.forEach((x, i) => expect(x).toBeCloseTo(eb[i]!, 6));
      // the raw weights are back, and nothing was left behind by the updates or the swap
      expect(Array.from(a.dataSync())).toEqual(Array.from(raw[0]!));
      expect(Array.from(b.dataSync())).toEqual(Array.from(raw[1]!));
      expect(tf.memory().numTensors).toBe(before + 2);
      ema.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    tf.dispose([a, b]);
  });

  it('the update leaves no tensors and the swap puts the raw weights back when the function throws', async () => {
    const m = tinyRestoreModel();
    const vars = m.variables();
    const base = tf.memory().numTensors;
    const ema = new WeightEma(vars, 0.99);
    expect(tf.memory().numTensors).toBe(base + vars.length);
    const raw = snapshot(m);
    for (let i = 0; i < 5; i++) {
      for (const v of vars) tf.tidy(() => v.assign(tf.add(v, 0.01)));
      ema.update(vars);
    }
    expect(tf.memory().numTensors).toBe(base + vars.length);
    const moved = snapshot(m);
    await expect(ema.withEmaWeights(m, async () => {
      expect(maxDiff(snapshot(m), raw)).toBeGreaterThan(0); // the average: between the start and now
      expect(maxDiff(snapshot(m), moved)).toBeGreaterThan(0);
      throw new Error('validation failed');
    })).rejects.toThrow('validation failed');
    expect(maxDiff(snapshot(m), moved)).toBe(0);
    expect(tf.memory().numTensors).toBe(base + vars.length);
    ema.dispose();
    expect(tf.memory().numTensors).toBe(base);
    m.dispose();
  });
});

describe('trainLoop with --ema', () => {
  it('after three steps, validation and the saved model hold the average of the hand computation; the raw weights go on training', async () => {
    const dir = tmp();
    const base = tinyTask(3);
    const seen: Float32Array[][] = [];
    let validated: Float32Array[] = [];
    // batches are asked for before step 0 and after steps 1 and 2: each call sees the weights the steps made so far
    const task: TrainTask = {
      ...base,
      batchLoss: (m, rng) => {
        seen.push(snapshot(m));
        return base.batchLoss(m, rng);
      },
      validate: async (m) => {
        validated = snapshot(m);
        return base.validate(m);
      },
    };
    const m = tinyRestoreModel();
    try {
      await trainLoop(m, task, { outDir: dir, epochs: 1, seed: 3, resume: false, optim: { lr: 0.02, warmupSteps: 0 }, ema: 0.2, card: { task: 'restore', ema: 0.2 } });
      expect(seen.length).toBe(3);
      const weights = [...seen, snapshot(m)];
      const want = handEma(weights, (k) => Math.min(0.2, (1 + k) / (10 + k)));
      expect(maxDiff(validated, want)).toBeLessThan(2e-6);
      // the test can tell: no warm start, or a warm start one update late, is far off
      expect(maxDiff(validated, handEma(weights, () => 0.2))).toBeGreaterThan(1e-4);
      expect(maxDiff(validated, handEma(weights, (k) => Math.min(0.2, (2 + k) / (11 + k))))).toBeGreaterThan(1e-4);
      const saved = await loadTaskModel(dir);
      try {
        expect(maxDiff(snapshot(saved), validated)).toBe(0);
        expect(maxDiff(snapshot(saved), snapshot(m))).toBeGreaterThan(1e-4);
        expect((saved.manifest.card as { ema?: number }).ema).toBe(0.2);
      } finally {
        saved.dispose();
      }
    } finally {
      m.dispose();
    }
  }, 120_000);

  it('the raw weights end bit for bit as without it, and it leaves no tensors behind', async () => {
    // one step per epoch: the second step runs right after the first validation swapped the average in and out
    const task = tinyTask(1);
    const run = async (ema?: number) => {
      const dir = tmp();
      const m = tinyRestoreModel();
      const before = tf.memory().numTensors;
      const lines: string[] = [];
      await trainLoop(m, task, { outDir: dir, epochs: 2, seed: 9, resume: false, optim: { lr: 3e-3 }, ...(ema ? { ema } : {}), log: (l) => lines.push(l), card: { task: 'restore' } });
      return { m, left: tf.memory().numTensors - before, lines };
    };
    const plain = await run();
    const averaged = await run(0.9);
    const again = await run();
    try {
      expectSameTrainedWeights(plain.m, averaged.m);
      expect(averaged.left).toBe(again.left);
      expect(averaged.lines[0]).toBe('EMA of the weights on, decay 0.9 (starts from the initial weights); validation and the saved models use the average');
      expect(plain.lines.some((l) => l.includes('EMA'))).toBe(false);
    } finally {
      for (const r of [plain, averaged, again]) r.m.dispose();
    }
  }, 120_000);

  it('a run stopped after an epoch and resumed ends with the average and best model of an uninterrupted one', async () => {
    const task = tinyTask(1);
    const opts = (outDir: string): LoopOptions => ({ outDir, epochs: 3, seed: 7, resume: false, optim: { lr: 3e-3 }, ema: 0.95, card: { task: 'restore' } });
    const straight = tmp();
    const a = tinyRestoreModel();
    await trainLoop(a, task, opts(straight));
    const cut = tmp();
    const stop = new AbortController();
    const b = tinyRestoreModel();
    await trainLoop(b, task, { ...opts(cut), signal: stop.signal, log: (l) => l.startsWith('epoch 1/') && stop.abort() });
    b.dispose();
    const half = JSON.parse(readFileSync(join(cut, 'checkpoint', 'checkpoint.json'), 'utf8'));
    expect(half.epoch).toBe(1);
    expect(half.ema).toEqual({ decay: 0.95, step: 1 });
    const c = tinyRestoreModel();
    const lines: string[] = [];
    await trainLoop(c, task, { ...opts(cut), resume: true, log: (l) => lines.push(l) });
    try {
      expect(lines).toContain('EMA of the weights on, decay 0.95 (continued from the checkpoint after 1 update); validation and the saved models use the average');
      expectSameTrainedWeights(a, c);
      const file = (d: string, f: string) => readFileSync(join(d, f));
      // the checkpoint holds raw weights, moments and average: all three equal
      expect(file(cut, 'checkpoint/checkpoint.safetensors').equals(file(straight, 'checkpoint/checkpoint.safetensors'))).toBe(true);
      expect(file(cut, 'weights.safetensors').equals(file(straight, 'weights.safetensors'))).toBe(true);
      expect(JSON.parse(file(cut, 'checkpoint/checkpoint.json').toString()).ema).toEqual({ decay: 0.95, step: 3 });
    } finally {
      a.dispose();
      c.dispose();
    }
  }, 180_000);

  it('resuming a checkpoint without an average starts one from the resumed weights; another decay, or none, is a usage error', async () => {
    const task = tinyTask(1);
    const dir = tmp();
    const stop = new AbortController();
    const m = tinyRestoreModel();
    try {
      await trainLoop(m, task, { outDir: dir, epochs: 3, seed: 2, resume: false, signal: stop.signal, log: (l) => l.startsWith('epoch 1/') && stop.abort(), card: { task: 'restore' } });
      const lines: string[] = [];
      const stop2 = new AbortController();
      await trainLoop(m, task, { outDir: dir, epochs: 3, seed: 2, resume: true, ema: 0.99, signal: stop2.signal, log: (l) => (lines.push(l), l.startsWith('epoch 2/') && stop2.abort()), card: { task: 'restore' } });
      expect(lines).toContain('EMA of the weights on, decay 0.99 (the checkpoint had none, so it starts from the resumed weights at step 1); validation and the saved models use the average');
      expect(JSON.parse(readFileSync(join(dir, 'checkpoint', 'checkpoint.json'), 'utf8')).ema).toEqual({ decay: 0.99, step: 1 });
      for (const ema of [0.9, undefined]) {
        const err = await trainLoop(m, task, { outDir: dir, epochs: 3, seed: 2, resume: true, ...(ema ? { ema } : {}), card: { task: 'restore' } }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(GatedError);
        expect((err as GatedError).code).toBe('usage');
        expect((err as GatedError).message).toContain('--ema 0.99');
      }
    } finally {
      m.dispose();
    }
  }, 120_000);

  it('a train run passes the decay to the loop and records it in the model card', () => {
    const o = { data: 'd', model: 'm', outDir: 'o', name: 'n', epochs: 1, batch: 1, seed: 1, resume: false };
    const on = runLoopOptions({ ...o, ema: 0.999 }, { task: 'restore' });
    expect(on.ema).toBe(0.999);
    expect(on.card).toEqual({ task: 'restore', ema: 0.999 });
    const off = runLoopOptions(o, { task: 'restore' });
    expect(off.ema).toBeUndefined();
    expect(off.card).toEqual({ task: 'restore' });
  });
});
