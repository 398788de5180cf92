/**
 * Activation recomputation and the freeing backward pass (backbones/layers/recompute.ts), and HER-Seg with
 * `recompute: true`: the same loss and parameter gradients as without, a strictly lower peak of live tensor
 * bytes during a training step, and training that still lowers the loss.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { createBackbone } from '../../backbones/_registry.ts';
import { herSegLoss } from '../../backbones/her_seg_loss.ts';
import { withTraining } from '../../backbones/layers/drop_path.ts';
import { gradientsFreeing, recompute, variableGradsFreeing } from '../../backbones/layers/recompute.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../pipelines/train/optim.ts';

type Grad = (f: () => tf.Scalar, vars: tf.Variable[]) => { value: tf.Scalar; grads: Record<string, tf.Tensor> };

/** Loss and gradients (by parameter name; variable names carry a per-model suffix) of one HER-Seg training step, and the peak of live tensor bytes above the start. */
function herSegStep(recomputeOn: boolean, grad: Grad, size = 64): { loss: number; grads: Map<string, Float32Array>; peak: number } {
  const model = createBackbone('test_her_seg', { seed: 4, overrides: { recompute: recomputeOn, dropPath: 0.3 } });
  const x = tf.randomNormal([2, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.tidy(() => tf.cast(tf.greater(tf.randomUniform([2, size, size, 1], 0, 1, 'float32', 2), 0.5), 'float32'));
  const vars = model.params.variables();
  const peak = trackPeak();
  // stochastic depth on, seeded: the recomputed blocks must see the masks of the forward pass
  const { value, grads } = grad(() => withTraining(() => herSegLoss(model.forward(x), y, { recompute: recomputeOn }), { seed: 7 }), vars);
  const bytes = peak.stop();
  const out = { loss: value.dataSync()[0]!, grads: new Map(Object.entries(grads).map(([k, g]) => [k.replace(/#\d+$/, ''), g.dataSync() as Float32Array])), peak: bytes };
  tf.dispose([value, x, y, ...Object.values(grads)]);
  model.dispose();
  return out;
}

/** Peak of the engine's live tensor bytes from now until stop(), above the level at the start. */
function trackPeak(): { stop: () => number } {
  const engine = tf.engine() as unknown as { state: { numBytes: number }; trackTensor: (...a: unknown[]) => unknown };
  const start = engine.state.numBytes;
  let peak = start;
  const track = engine.trackTensor;
  engine.trackTensor = function (this: unknown, ...a: unknown[]) {
    const r = track.apply(engine, a);
    peak = Math.max(peak, engine.state.numBytes);
    return r;
  };
  return {
    stop: () => {
      engine.trackTensor = track;
      return peak - start;
    },
  };
}

/** Every gradient of b equals a's within rtol of that tensor's largest entry (plus a floor for gradients that are zero in exact arithmetic). */
function expectSameGrads(a: Map<string, Float32Array>, b: Map<string, Float32Array>, rtol: number): void {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  let scale = 0;
  for (const g of a.values()) for (const v of g) scale = Math.max(scale, Math.abs(v));
  expect(scale).toBeGreaterThan(0);
  for (const [name, ga] of a) {
    const gb = b.get(name)!;
    let m = 0;
    let d = 0;
    for (let i = 0; i < ga.length; i++) {
      m = Math.max(m, Math.abs(ga[i]!));
      d = Math.max(d, Math.abs(ga[i]! - gb[i]!));
    }
    expect(d, name).toBeLessThanOrEqual(rtol * m + 1e-7 * scale);
  }
}

describe.each(['cpu', 'wasm'] as const)('HER-Seg with recomputation on %s', (backend) => {
  beforeAll(async () => {
    await selectDevice(backend);
  });
  afterAll(async () => {
    await selectDevice('cpu');
  });

  it('gives the loss and every parameter gradient of the plain step, with a lower peak of live tensors', () => {
    const plain = herSegStep(false, tf.variableGrads);
    const rc = herSegStep(true, tf.variableGrads);
    expect(plain.grads.size).toBeGreaterThan(100);
    expect(rc.loss).toBe(plain.loss);
    expectSameGrads(plain.grads, rc.grads, 1e-5);
    // the tape holds the segments' inputs instead of every activation: at 64² the plain step peaks at ~4x
    expect(rc.peak).toBeLessThan(0.6 * plain.peak);
  });

  it('with the freeing backward pass too: the same gradients, bit for bit without recomputation, and a lower peak still', () => {
    const plain = herSegStep(false, tf.variableGrads);
    const freeing = herSegStep(false, variableGradsFreeing);
    expect(freeing.loss).toBe(plain.loss);
    expectSameGrads(plain.grads, freeing.grads, 0);
    expect(freeing.peak).toBeLessThan(plain.peak);
    const both = herSegStep(true, variableGradsFreeing);
    expectSameGrads(plain.grads, both.grads, 1e-5);
    expect(both.peak).toBeLessThan(freeing.peak);
  });
});

describe('HER-Seg training with recomputation', () => {
  beforeAll(async () => {
    await selectDevice('cpu');
  });

  it('a few AdamW steps on one batch lower the loss', () => {
    const model = createBackbone('test_her_seg', { seed: 2, overrides: { recompute: true } });
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    // a learnable target: the sign of the first input channel
    const y = tf.tidy(() => tf.cast(tf.greater(tf.slice(x, [0, 0, 0, 0], [2, 32, 32, 1]), 0), 'float32'));
    const vars = model.params.variables();
    const opt = new AdamW({ ...ADAMW_DEFAULTS, lr: 1e-2, warmupSteps: 0, totalSteps: 1000 });
    const losses: number[] = [];
    for (let s = 0; s < 10; s++) {
      const { value, grads } = variableGradsFreeing(() => herSegLoss(model.forward(x, { training: true }), y, { recompute: true }), vars);
      losses.push(value.dataSync()[0]!);
      opt.apply(new Map(vars.filter((v) => grads[v.name]).map((v) => [v, grads[v.name]!])));
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! * 0.9);
    opt.dispose();
    tf.dispose([x, y]);
    model.dispose();
  });
});

describe('recompute and gradientsFreeing on small functions', () => {
  beforeAll(async () => {
    await selectDevice('cpu');
  });

  it('a recomputed segment differentiates its inputs and listed variables like the plain function, and reads its constants', () => {
    const w = tf.variable(tf.tensor2d([[0.5, -1], [2, 0.25]]), true, 'recompute_w');
    const c = tf.tensor2d([[1, 2], [3, 4]]);
    const x = tf.tensor2d([[0.3, -0.7], [1.1, 0.2]]);
    const seg = (u: tf.Tensor, k: tf.Tensor) => tf.sum(tf.mul(tf.tanh(tf.matMul(u as tf.Tensor2D, w)), k));
    const plain = tf.grads((u: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(tf.tanh(tf.matMul(u as tf.Tensor2D, v as tf.Tensor2D)), c)))([x, w]);
    const viaTape = tf.grads((u: tf.Tensor) => recompute(([a], [k]) => seg(a!, k!), [u], [w], [c]))([x])[0]!;
    const { grads } = gradientsFreeing(() => recompute(([a], [k]) => seg(a!, k!), [x], [w], [c]), [x, w]);
    expect(Array.from(viaTape.dataSync())).toEqual(Array.from(plain[0]!.dataSync()));
    expect(Array.from(grads[0]!.dataSync())).toEqual(Array.from(plain[0]!.dataSync()));
    expect(Array.from(grads[1]!.dataSync())).toEqual(Array.from(plain[1]!.dataSync()));
    tf.dispose([w, c, x, viaTape, ...plain, ...(grads as tf.Tensor[])]);
  });

  it('gradientsFreeing: shared tensors accumulate, an unreached input has no gradient, dy scales, nothing leaks', () => {
    const a = tf.tensor1d([1, 2, 3]);
    const b = tf.tensor1d([0.5, -1, 4]);
    const unused = tf.tensor1d([7]);
    const dy = tf.tensor1d([1, 10, 100]);
    const f = (p: tf.Tensor, q: tf.Tensor) => {
      const s = tf.mul(p, q); // used twice: its gradient is the sum of both uses
      return tf.add(tf.exp(tf.mul(s, 0.1)), tf.square(s));
    };
    const before = tf.memory().numTensors;
    const { value, grads } = gradientsFreeing(() => f(a, b), [a, b, unused], dy);
    const want = tf.grads(f)([a, b], dy);
    expect(grads[2]).toBeUndefined();
    for (let i = 0; i < 2; i++) {
      const g = grads[i]!.dataSync();
      want[i]!.dataSync().forEach((v, j) => expect(g[j]).toBeCloseTo(v, 5));
    }
    tf.dispose([value, ...(grads.filter(Boolean) as tf.Tensor[]), ...want]);
    expect(tf.memory().numTensors).toBe(before);
    expect(dy.isDisposed).toBe(false); // the caller's dy stays the caller's
    tf.dispose([a, b, unused, dy]);
  });

  it('gradientsFreeing refuses to run inside another gradient computation', () => {
    const a = tf.scalar(2);
    expect(() => tf.grad((x: tf.Tensor) => gradientsFreeing(() => tf.square(x), [x]).value)(a)).toThrow(/inside another gradient/);
    a.dispose();
  });
});

describe('herSegLoss', () => {
  beforeAll(async () => {
    await selectDevice('cpu');
  });

  it('is 0.8·(1 − batch Dice) + 0.2·0.8·(1 − e^−BCE)²·BCE of the sigmoid, computed here in float64', () => {
    const z = [2.5, -1, 0.3, -4, 7, 0, -0.2, 1.4];
    const t = [1, 0, 1, 0, 1, 1, 0, 0];
    const p = z.map((v) => 1 / (1 + Math.exp(-v)));
    let inter = 0;
    let sp = 0;
    let st = 0;
    let bce = 0;
    p.forEach((v, i) => {
      inter += v * t[i]!;
      sp += v;
      st += t[i]!;
      bce -= t[i]! * Math.log(v) + (1 - t[i]!) * Math.log(1 - v);
    });
    bce /= z.length;
    const dice = (2 * inter + 1) / (sp + st + 1);
    const want = 0.8 * (1 - dice) + 0.2 * 0.8 * (1 - Math.exp(-bce)) ** 2 * bce;
    const got = herSegLoss(tf.tensor4d(z, [2, 2, 2, 1]), tf.tensor4d(t, [2, 2, 2, 1])).dataSync()[0]!;
    expect(got).toBeCloseTo(want, 6);
    const half = herSegLoss(tf.tensor4d(z, [2, 2, 2, 1]), tf.tensor4d(t, [2, 2, 2, 1]), { weight: 0.5 }).dataSync()[0]!;
    expect(half).toBeCloseTo(0.5 * (1 - dice) + 0.5 * 0.8 * (1 - Math.exp(-bce)) ** 2 * bce, 6);
  });

  it('refuses targets of another shape and weights outside [0, 1]', () => {
    expect(() => herSegLoss(tf.zeros([1, 4, 4, 1]), tf.zeros([1, 4, 4, 2]))).toThrow(/one shape/);
    expect(() => herSegLoss(tf.zeros([1, 4, 4, 1]), tf.zeros([1, 4, 4, 1]), { weight: 1.5 })).toThrow(/weight/);
  });
});
