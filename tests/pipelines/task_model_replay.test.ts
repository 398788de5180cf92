/**
 * A task model on WebGPU (SwiftShader) replays its recorded forward from the second call of a batch shape on:
 * the same bits as a direct forward, never under training or a gradient tape, recorded again after its weights
 * change, and at most two shapes held.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { withTraining } from '../../backbones/layers/drop_path.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { buildTaskModel } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});
afterAll(() => {
  tf.disposeVariables();
});

const bits = async (t: tf.Tensor) => new Uint32Array(((await t.data()) as Float32Array).slice().buffer);

it('replays from the second call of a shape, equal to the direct forward, and records again when weights change', async () => {
  const m = buildTaskModel(specFromPreset('seg_test', 'segment', 'rt', ['bg', 'fg']), 3);
  const xs = [1, 2, 3, 4].map((s) => tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', s) as tf.Tensor4D);
  // compiling ahead (nothing dispatched) neither counts as a call nor is recorded
  tf.env().set('WEBGPU_ENGINE_COMPILE_ONLY', true);
  try {
    for (let k = 0; k < 2; k++) tf.dispose(m.predict(xs[0]!));
  } finally {
    tf.env().set('WEBGPU_ENGINE_COMPILE_ONLY', false);
  }
  await (tf.backend() as unknown as { checkCompileCompletionAsync(): Promise<void> }).checkCompileCompletionAsync();
  expect(m.replays.stats).toEqual({ direct: 2, recorded: 0, replayed: 0 });
  const outs = xs.map((x) => m.predict(x));
  expect(m.replays.stats).toEqual({ direct: 3, recorded: 1, replayed: 2 });
  process.env.GATEDVISION_REPLAY = '0';
  try {
    for (let i = 0; i < xs.length; i++) {
      const direct = m.predict(xs[i]!);
      expect(await bits(outs[i]!)).toEqual(await bits(direct));
      direct.dispose();
    }
  } finally {
    delete process.env.GATEDVISION_REPLAY;
  }
  // training mode and gradient tapes run the forward itself
  const trained = withTraining(() => m.predict(xs[0]!), { seed: 1 });
  const { value } = tf.variableGrads(() => tf.mean(m.predict(xs[0]!)) as tf.Scalar, m.variables().slice(0, 1));
  expect(m.replays.stats.replayed).toBe(2);
  // new weights: the replay notices and the shape is recorded again
  const v = m.variables()[0]!;
  v.assign(tf.add(v, 0.5));
  const after = m.predict(xs[1]!);
  const again = m.predict(xs[1]!);
  expect(m.replays.stats.recorded).toBe(2);
  expect(await bits(again)).toEqual(await bits(after));
  expect(await bits(after)).not.toEqual(await bits(outs[1]!));
  // a third shape evicts the least recently used
  for (const s of [48, 64]) for (let k = 0; k < 2; k++) tf.dispose(m.predict(tf.zeros([1, s, s, 3]) as tf.Tensor4D));
  expect(m.replays.stats.recorded).toBe(4);
  const direct = m.replays.stats.direct;
  tf.dispose(m.predict(xs[0]!)); // 32² was given back: a first call again
  expect(m.replays.stats.direct).toBe(direct + 1);
  tf.dispose([...xs, ...outs, trained, value, after, again]);
  m.dispose();
});
