/**
 * Stochastic depth: the layer drops whole samples at the asked rate (within binomial bounds) and scales kept
 * ones by 1/(1 − r); it is the identity in inference, so every model's inference output is the one with
 * dropPath 0 (parity runs inference). Rates ramp as the official code's torch.linspace over all blocks; a
 * training forward differs from inference, replays from its seed, and a few steps with drop-path still learn.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { ParamStore } from '../../backbones/_params.ts';
import { createBackbone, resolveConfig } from '../../backbones/_registry.ts';
import { DEIT_DEFAULTS, DeitModel } from '../../backbones/deit.ts';
import { HER_SEG_DEFAULTS, HerSegModel } from '../../backbones/her_seg.ts';
import { dropout, dropPath, dropPathRamp, TrainState, withTraining } from '../../backbones/layers/drop_path.ts';
import { VIG_DEFAULTS, VigModel } from '../../backbones/vig.ts';
import { VIG_H_DEFAULTS, VigHModel } from '../../backbones/vig_h.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

/** torch.linspace(0, r, n), written out independently of the code under test. */
const linspace = (r: number, n: number) => (n === 1 ? [0] : Array.from({ length: n }, (_, i) => (i * r) / (n - 1)));

describe('the drop-path layer', () => {
  it('is the identity in inference, whatever the rate', () => {
    const x = tf.randomNormal([4, 3, 3, 2]);
    expect(dropPath(x, 0.7, new TrainState())).toBe(x);
    expect(dropPath(x, 0.7, new TrainState({ training: false }))).toBe(x);
    expect(dropPath(x, 0, new TrainState({ training: true }))).toBe(x);
    x.dispose();
  });

  it.each([0.1, 0.3, 0.6])('rate %f: dropped fraction within binomial bounds over many draws; kept samples scaled by 1/(1-r)', async (r) => {
    const B = 2000;
    const draws = 10;
    const x = tf.randomUniform([B, 2, 2, 3], 0.5, 1.5, 'float32', 1);
    const xs = await x.data();
    const seen: string[] = [];
    let dropped = 0;
    for (let d = 0; d < draws; d++) {
      const state = new TrainState({ training: true, seed: 100 * d });
      const y = dropPath(x, r, state);
      const ys = await y.data();
      y.dispose();
      let pattern = '';
      let bad = 0;
      for (let b = 0; b < B; b++) {
        // per sample: all 12 values zero, or all x/(1-r)
        const zero = ys[b * 12] === 0;
        pattern += zero ? '0' : '1';
        if (zero) dropped++;
        for (let k = b * 12; k < (b + 1) * 12; k++) {
          if (zero ? ys[k] !== 0 : Math.abs(ys[k]! - xs[k]! / (1 - r)) > 1e-6 * (1 + Math.abs(xs[k]!))) bad++;
        }
      }
      expect(bad).toBe(0);
      seen.push(pattern);
    }
    const n = B * draws;
    const sd = Math.sqrt(n * r * (1 - r));
    expect(Math.abs(dropped - n * r)).toBeLessThan(4 * sd);
    expect(new Set(seen).size).toBe(draws); // each draw has its own mask
    x.dispose();
  });

  it('the same seed gives the same mask; rate 1 drops everything', async () => {
    const x = tf.ones([64, 4]);
    const a = await dropPath(x, 0.5, new TrainState({ training: true, seed: 9 })).data();
    const b = await dropPath(x, 0.5, new TrainState({ training: true, seed: 9 })).data();
    const c = await dropPath(x, 0.5, new TrainState({ training: true, seed: 10 })).data();
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
    expect([...(await dropPath(x, 1, new TrainState({ training: true })).data())].every((v) => v === 0)).toBe(true);
    x.dispose();
  });

  it('gradients reach the input of kept samples only, scaled by 1/(1-r)', async () => {
    const x = tf.randomNormal([32, 5], 0, 1, 'float32', 2);
    const g = tf.grad((t: tf.Tensor) => tf.sum(dropPath(t, 0.4, new TrainState({ training: true, seed: 3 }))))(x);
    const y = await dropPath(x, 0.4, new TrainState({ training: true, seed: 3 })).data();
    const gs = await g.data();
    for (let i = 0; i < gs.length; i++) expect(gs[i]).toBeCloseTo(y[i] === 0 ? 0 : 1 / 0.6, 5);
    tf.dispose([x, g]);
  });

  it('withTraining turns training on inside its callback only, with a replayable seed stream', async () => {
    expect(new TrainState().training).toBe(false);
    const inside = withTraining(() => [new TrainState(), new TrainState({ training: false })]);
    expect(inside[0]!.training).toBe(true);
    expect(inside[1]!.training).toBe(false);
    expect(new TrainState().training).toBe(false);
    const seeds = withTraining(() => [new TrainState().nextSeed(), new TrainState().nextSeed(), new TrainState({ seed: 50 }).nextSeed()], { seed: 7 });
    expect(seeds).toEqual([7, 8, 50]);
    expect(() => withTraining(() => Promise.resolve(1))).toThrow(GatedError);
    expect(new TrainState().training).toBe(false);
  });

  it('rates outside [0, 1] are refused as config errors', () => {
    for (const r of [-0.1, 1.5, Number.NaN]) {
      expect(() => dropPathRamp(r, 4)).toThrow(GatedError);
      expect(() => createBackbone('test_vig', { overrides: { dropPath: r } })).toThrow(/dropPath/);
    }
  });

  it('dropout (Activator FFN) is element-wise and only in training', async () => {
    const x = tf.ones([200, 50]);
    expect(dropout(x, 0.5, new TrainState())).toBe(x);
    const y = await dropout(x, 0.5, new TrainState({ training: true, seed: 1 })).data();
    const zeros = y.filter((v) => v === 0).length;
    expect(Math.abs(zeros - 5000)).toBeLessThan(4 * Math.sqrt(10000 * 0.25));
    expect(y.every((v) => v === 0 || Math.abs(v - 2) < 1e-6)).toBe(true);
    x.dispose();
  });
});

describe('per-block rates follow the official ramps', () => {
  const counting = () => new ParamStore(false);
  it('ViG plain: linspace(0, r, depth) (vig_s 0.2, vig_b 0.5, vig_t 0)', () => {
    for (const [name, r] of [['vig_s', 0.2], ['vig_b', 0.5], ['vig_t', 0]] as const) {
      expect(resolveConfig(name).dropPath).toBe(r);
      const m = new VigModel(resolveConfig(name) as never, counting());
      expect(m.dropPathRates.length).toBe(12);
      m.dropPathRates.forEach((v, i) => expect(v).toBeCloseTo(linspace(r, 12)[i]!, 12));
    }
  });
  it('ViG-H: one ramp over all blocks of all stages, not one per stage (H-T 0.2, H-S 0.3, H-B 0.6)', () => {
    for (const [name, r, n] of [['vig_h_t', 0.2, 11], ['vig_h_s', 0.3, 23], ['vig_h_b', 0.6, 23]] as const) {
      expect(resolveConfig(name).dropPath).toBe(r);
      const m = new VigHModel(resolveConfig(name) as never, counting());
      expect(m.dropPathRates.length).toBe(n);
      m.dropPathRates.forEach((v, i) => expect(v).toBeCloseTo(linspace(r, n)[i]!, 12));
    }
  });
  it('HER-Seg: linspace(0, 0.1, 12) with the two MBConv slots unused', () => {
    expect(resolveConfig('her_seg').dropPath).toBe(0.1);
    const m = new HerSegModel({ ...HER_SEG_DEFAULTS, dropPath: 0.1 }, counting());
    expect(m.dropPathRates.length).toBe(10);
    m.dropPathRates.forEach((v, i) => expect(v).toBeCloseTo(linspace(0.1, 12)[i + 2]!, 12));
  });
  it('DeiT: linspace(0, 0.1, depth)', () => {
    expect(resolveConfig('deit_t').dropPath).toBe(0.1);
    const m = new DeitModel({ ...DEIT_DEFAULTS, dropPath: 0.1 }, counting());
    m.dropPathRates.forEach((v, i) => expect(v).toBeCloseTo(linspace(0.1, 12)[i]!, 12));
  });
  it('tiny variants default to no drop-path', () => {
    for (const n of ['test_vig', 'test_vig_h', 'test_her_seg', 'test_deit']) expect(resolveConfig(n).dropPath).toBe(0);
  });
  it('defaults stay valid configs: families without it refuse the option', () => {
    expect(() => createBackbone('test_maxim', { overrides: { dropPath: 0.1 } })).toThrow(/not an option/);
    expect(VIG_DEFAULTS.dropPath).toBe(0);
    expect(VIG_H_DEFAULTS.dropPath).toBe(0);
  });
});

describe.each([
  ['test_vig', 32],
  ['test_vig_h', 32],
  ['test_her_seg', 32],
  ['test_deit', 16],
  ['test_activator', 16],
] as const)('%s with drop-path (or dropout)', (name, size) => {
  // Activator has no drop-path in the official code; its FFN dropout is the train-only part
  const train = name === 'test_activator' ? { dropout: 0.5 } : { dropPath: 0.9 };
  const off = name === 'test_activator' ? { dropout: 0 } : { dropPath: 0 };
  it('inference equals dropPath 0; training differs, replays from its seed, and equals the withTraining route', async () => {
    const a = createBackbone(name, { seed: 4, overrides: off });
    const b = createBackbone(name, { seed: 4, overrides: train });
    const x = tf.randomNormal([6, size, size, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const r = a.forward(x);
    const ref = await r.data();
    r.dispose();
    const outs = [b.forward(x), b.forward(x, { training: false }), b.forward(x, { training: true, seed: 11 }), b.forward(x, { training: true, seed: 11 }), withTraining(() => b.forward(x), { seed: 11 }), a.forward(x, { training: true, seed: 11 })];
    const [inf, inf2, tr, tr2, scoped, offTrain] = await Promise.all(outs.map((t) => t.data()));
    expect([...inf!]).toEqual([...ref]);
    expect([...inf2!]).toEqual([...ref]);
    expect([...tr!]).not.toEqual([...ref]);
    expect([...tr2!]).toEqual([...tr!]);
    expect([...scoped!]).toEqual([...tr!]);
    expect([...offTrain!]).toEqual([...ref]); // training with rate 0 changes nothing else
    tf.dispose(outs);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(x);
    a.dispose();
    b.dispose();
  });
});

it('ViG-H drop-path ramps over the whole network: stage 1 (rate 0) is never dropped, later stages are', async () => {
  const m = createBackbone('test_vig_h', { seed: 2, overrides: { dropPath: 1 } }); // rates 0, 1/3, 2/3, 1
  const x = tf.randomNormal([8, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
  const inf = m.forwardFeatures(x);
  const tr = m.forwardFeatures(x, { training: true, seed: 1 });
  expect([...(await tr[0]!.data())]).toEqual([...(await inf[0]!.data())]);
  expect([...(await tr[1]!.data())]).not.toEqual([...(await inf[1]!.data())]);
  tf.dispose([x, ...inf, ...tr]);
  m.dispose();
});

it('a tiny DeiT with drop-path 0.3 learns: a few training steps lower the (inference) loss', async () => {
  const model = createBackbone('test_deit', { seed: 3, overrides: { dropPath: 0.3 } });
  const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
  const labels = tf.oneHot(tf.tensor1d([0, 3, 5, 9], 'int32'), 10);
  const opt = tf.train.adam(3e-3);
  const vars = model.params.variables();
  const loss = (training: boolean, seed?: number) => () => tf.losses.softmaxCrossEntropy(labels, model.forward(x, { training, seed }) as tf.Tensor2D) as tf.Scalar;
  const first = (await loss(false)().data())[0]!;
  for (let i = 0; i < 10; i++) tf.dispose(opt.minimize(loss(true, i), true, vars) ?? []);
  const last = (await loss(false)().data())[0]!;
  expect(Number.isFinite(last)).toBe(true);
  expect(last).toBeLessThan(first * 0.8);
  tf.dispose([x, labels]);
  model.dispose();
});
