/**
 * --ema on WebGPU (SwiftShader): the average is updated on the device as the formula says, and a forward recorded
 * with the raw weights is never replayed while the average is swapped in (both sets stay alive across the swap,
 * so the replay's own check would pass).
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { selectDevice } from '../../../kernels/backend.ts';
import { WeightEma } from '../../../pipelines/train/ema.ts';
import { tinyRestoreModel } from '../../_helpers/restore_model.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
  if (tf.getBackend() !== 'webgpu') throw new Error('webgpu did not start');
});
afterAll(() => {
  tf.disposeVariables();
});

const bits = async (t: tf.Tensor) => new Uint32Array(((await t.data()) as Float32Array).slice().buffer);

it('updates on the device by the formula, leaves no tensors, and validation never replays the raw weights', async () => {
  const m = tinyRestoreModel();
  const vars = m.variables();
  const x = tf.randomUniform([1, 32, 32, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
  const start = m.predict(x);
  const w0 = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
  const before = tf.memory().numTensors;
  const ema = new WeightEma(vars, 0.999);
  // one "step": every weight moves by 0.05, then the average takes a tenth of the old and nine tenths of the new
  for (const v of vars) tf.tidy(() => v.assign(tf.add(v, 0.05)));
  ema.update(vars);
  expect(tf.memory().numTensors).toBe(before + vars.length);
  const w1 = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
  // the raw weights' forward, called until it is recorded and replayed
  const raw = [m.predict(x), m.predict(x), m.predict(x)];
  expect(m.replays.stats.replayed).toBeGreaterThanOrEqual(1);
  const avg = await ema.withEmaWeights(m, async () => {
    const got = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
    got.forEach((g, i) => g.forEach((value, j) => expect(Math.abs(value - (0.1 * w0[i]![j]! + 0.9 * w1[i]![j]!))).toBeLessThan(1e-6)));
    return m.predict(x);
  });
  expect(await bits(avg)).not.toEqual(await bits(raw[2]!));
  expect(await bits(avg)).not.toEqual(await bits(start));
  // with the raw weights back, the forward is theirs again
  const back = m.predict(x);
  expect(await bits(back)).toEqual(await bits(raw[0]!));
  const after = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
  after.forEach((a, i) => expect(a).toEqual(w1[i]));
  tf.dispose([x, start, avg, back, ...raw]);
  ema.dispose();
  expect(tf.memory().numTensors).toBe(before - 2);
  m.dispose();
}, 180_000);
