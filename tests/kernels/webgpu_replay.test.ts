/**
 * A recorded forward replayed on WebGPU (SwiftShader): the same bits as tfjs's own run for every backbone family
 * and for a forward that makes constants, reshapes and copies; weights named in `keep` are read in place and
 * checked, others are copied when first read; forwards that cannot be replayed are refused whole.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone, listBackbones } from '../../backbones/_registry.ts';
import { GatedError } from '../../core/errors.ts';
import { replayBackendView, writtenBindings } from '../../kernels/_webgpu_internal.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { captureReplay, ReplayCache } from '../../kernels/webgpu_replay.ts';
import type { MaximModel } from '../../backbones/maxim.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});
afterAll(() => {
  tf.disposeVariables();
});

const bits = async (t: tf.Tensor) => new Uint32Array(((await t.data()) as Float32Array).slice().buffer);

describe('captureReplay', () => {
  it('replays a composite forward bit for bit on new inputs, and its memory is its own', async () => {
    const w = tf.randomNormal([6, 5], 0, 1, 'float32', 1);
    const fn = (x: tf.Tensor) =>
      tf.tidy(() => {
        const h = tf.relu(tf.add(tf.matMul(tf.reshape(x, [-1, 6]), w), tf.scalar(0.25))); // a constant made in the forward
        const c = tf.concat([h, tf.mul(h, 2)], 1);
        return [tf.sum(c, 1), tf.transpose(c)];
      });
    const x0 = tf.randomNormal([3, 2, 6], 0, 1, 'float32', 2);
    const { outputs, replay } = captureReplay(fn, x0);
    const want0 = fn(x0);
    for (let i = 0; i < 2; i++) expect(await bits(outputs[i]!)).toEqual(await bits(want0[i]!));
    for (const seed of [3, 4]) {
      const x = tf.randomNormal([3, 2, 6], 0, 1, 'float32', seed);
      const got = replay.run(x);
      const want = fn(x);
      expect(got.map((t) => t.shape)).toEqual(want.map((t) => t.shape));
      for (let i = 0; i < 2; i++) expect(await bits(got[i]!)).toEqual(await bits(want[i]!));
      tf.dispose([x, ...got, ...want]);
    }
    expect(replay.dispatches).toBeGreaterThanOrEqual(5);
    expect(replay.bytes).toBeGreaterThan(0);
    // the replay's intermediates are not tfjs's: work in between that reuses tfjs's pool changes nothing
    const x5 = tf.randomNormal([3, 2, 6], 0, 1, 'float32', 5);
    const first = replay.run(x5);
    const noise = tf.tidy(() => tf.add(tf.randomNormal([30], 0, 1, 'float32', 9), 1));
    await noise.data();
    const second = replay.run(x5);
    expect(await bits(first[0]!)).toEqual(await bits(second[0]!));
    tf.dispose([x0, x5, noise, ...outputs, ...want0, ...first, ...second]);
    replay.destroy();
    expect(() => replay.run(x0)).toThrow(GatedError);
    w.dispose();
  });

  it('reads live tensors in place and stops when one is disposed; copies those that die during the capture', async () => {
    const kept = tf.randomNormal([4, 4], 0, 1, 'float32', 6);
    const dying = tf.randomNormal([4, 4], 0, 1, 'float32', 7);
    let first = true;
    const fn = (x: tf.Tensor) => {
      const y = tf.tidy(() => tf.matMul(tf.matMul(x, kept), dying));
      if (first) dying.dispose(); // freed by the forward itself: its buffer goes back to tfjs's pool
      first = false;
      return y;
    };
    const x = tf.randomNormal([2, 4], 0, 1, 'float32', 8);
    const view = replayBackendView()!;
    const [, dyingBuffer] = [kept, dying].map((t) => view.bufferOf(t)); // on the device before the forward, as weights are
    const { outputs, replay } = captureReplay(fn, x);
    expect(replay.kept).toBe(1);
    // device ops that take buffers of that size from tfjs's pool, until one has the freed buffer and overwrote it
    const filler: tf.Tensor[] = [tf.matMul(x, x, true, false)];
    for (let i = 0; i < 32 && !filler.some((t) => view.bufferOf(t) === dyingBuffer); i++) filler.push(tf.add(filler[0]!, 1e6 + i));
    expect(filler.some((t) => view.bufferOf(t) === dyingBuffer)).toBe(true);
    await filler.at(-1)!.data();
    const again = replay.run(x)[0]!;
    expect(await bits(again)).toEqual(await bits(outputs[0]!));
    expect(replay.valid()).toBe(true);
    kept.dispose();
    expect(replay.valid()).toBe(false);
    expect(() => replay.run(x)).toThrow(/disposed or replaced/);
    tf.dispose([x, ...filler, again, ...outputs]);
    replay.destroy();
  });

  it('copies a tensor the forward read before its buffer was handed out again inside the same forward', async () => {
    const view = replayBackendView()!;
    const w = tf.randomNormal([4, 4], 0, 1, 'float32', 13);
    const wBuffer = view.bufferOf(w);
    const wHost = tf.tensor(await w.data(), [4, 4]);
    let reused = false;
    let rounds = 0;
    const fn = (x: tf.Tensor, weight: tf.Tensor, free: boolean) => {
      const a = tf.matMul(x, weight);
      if (free) weight.dispose(); // back to tfjs's pool mid-forward
      const parts: tf.Tensor[] = [];
      // the capture goes on until the freed buffer was handed out again; the direct run repeats as many rounds
      for (let i = 0; free ? i < 8 && !reused : i < rounds; i++) {
        const m = tf.matMul(a, a, true, false); // [4, 4]: the size of the freed buffer
        parts.push(m, tf.add(m, i));
        if (free) rounds++;
        if (free && parts.slice(-2).some((t) => view.bufferOf(t) === wBuffer)) reused = true;
      }
      const y = tf.addN([a, tf.slice(tf.matMul(a, parts.at(-1)!), [0, 0], [2, 4])]);
      tf.dispose([a, ...parts]);
      return y;
    };
    const x = tf.randomNormal([2, 4], 0, 1, 'float32', 14);
    const { outputs, replay } = captureReplay((t) => fn(t, w, true), x);
    expect(reused).toBe(true);
    expect(replay.kept).toBe(0);
    const x2 = tf.randomNormal([2, 4], 0, 1, 'float32', 15);
    const got = replay.run(x2)[0]!;
    const want = fn(x2, wHost, false);
    expect(await bits(got)).toEqual(await bits(want));
    tf.dispose([x, x2, got, want, wHost, ...outputs]);
    replay.destroy();
  });

  it('refuses a forward that reads a tensor back, and leaves no tensor behind', () => {
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 10);
    const before = tf.memory().numTensors;
    const fn = (t: tf.Tensor) => {
      const y = tf.add(t, 1);
      const m = tf.max(y).dataSync()[0]!; // a value the next op depends on: not replayable
      return tf.tidy(() => tf.div(y, m));
    };
    expect(() => captureReplay(fn, x)).toThrow(/reads a tensor back/);
    // the failed capture's intermediates are the forward's own (tidy is the caller's); the replay kept nothing
    expect(tf.memory().numTensors - before).toBeLessThanOrEqual(2);
    x.dispose();
  });

  it('refuses an input of another shape', () => {
    const x = tf.ones([2, 2]);
    const { outputs, replay } = captureReplay((t) => tf.add(t, 1), x);
    expect(() => replay.run(tf.ones([2, 3]))).toThrow(/recorded for float32 \[2,2\]/);
    expect(() => replay.run(tf.ones([2, 2], 'int32'))).toThrow(GatedError);
    tf.dispose([x, ...outputs]);
    replay.destroy();
  });

  it('reads the bindings a program writes from its WGSL', () => {
    const code = '@group(0) @binding(0) var<storage, read_write> result: array<f32>;\n@group(0) @binding(1) var<storage, read> a: array<f32>;\n@group(0) @binding(3) var<storage,read_write> b: array<atomic<i32>>;';
    expect([...writtenBindings(code)].sort()).toEqual([0, 3]);
  });

  it('keeps a recorded forward apart for each run-time switch of the model (MAXIM local pooling)', async () => {
    const m = createBackbone('test_maxim', { seed: 5 }) as MaximModel;
    const x = tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', 16) as tf.Tensor4D;
    const cache = new ReplayCache(4);
    const run = () => cache.run(x, (t) => m.forward(t as tf.Tensor4D) as tf.Tensor, m.forwardKey());
    const global = [run(), run()]; // direct, recorded
    m.localPooling = [8, 8];
    const local = [run(), run(), run()]; // direct, recorded, replayed: not the global model's replay
    m.localPooling = null;
    const globalAgain = run(); // replayed
    expect(cache.stats).toEqual({ direct: 2, recorded: 2, replayed: 2 });
    const want = await bits(global[0]!);
    expect(await bits(global[1]!)).toEqual(want);
    expect(await bits(globalAgain)).toEqual(want);
    const wantLocal = await bits(local[0]!);
    expect(wantLocal).not.toEqual(want);
    for (const t of local.slice(1)) expect(await bits(t)).toEqual(wantLocal);
    tf.dispose([x, ...global, ...local, globalAgain]);
    cache.dispose();
    m.dispose();
  });

  it.each(listBackbones(/^test_/))('%s: the replayed forward equals tfjs\'s bit for bit', async (name) => {
    const model = createBackbone(name, { seed: 0 });
    const size = name.includes('her_seg') ? 64 : name.includes('maxim') ? 16 : 32;
    const x0 = tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
    const x1 = tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 12) as tf.Tensor4D;
    const fn = (x: tf.Tensor) => model.forward(x as tf.Tensor4D) as tf.Tensor;
    const warm = fn(x0);
    const { outputs, replay } = captureReplay(fn, x0);
    expect(await bits(outputs[0]!)).toEqual(await bits(warm));
    expect(replay.kept).toBeGreaterThan(0); // the weights are read in place, not copied
    expect(replay.plan.buffers).toBeLessThan(replay.plan.values / 2); // tensors whose lives do not overlap share memory
    const want = fn(x1);
    const got = replay.run(x1)[0]!;
    expect(got.shape).toEqual(want.shape);
    expect(await bits(got)).toEqual(await bits(want));
    expect(Array.from(await want.data()).some((v) => Number.isNaN(v))).toBe(false);
    tf.dispose([x0, x1, warm, want, got, ...outputs]);
    replay.destroy();
    model.dispose();
  });
});
