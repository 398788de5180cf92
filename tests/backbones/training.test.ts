/** A few Adam steps on a tiny ViG lower the loss: gradients flow through BiGLA, GLI and the stem. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { createBackbone } from '../../backbones/_registry.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

it('test_vig fits a small batch', async () => {
  const model = createBackbone('test_vig', { seed: 3 });
  const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
  const labels = tf.oneHot(tf.tensor1d([0, 3, 5, 9], 'int32'), 10);
  const opt = tf.train.adam(3e-3);
  const vars = model.params.variables();
  const loss = () => tf.losses.softmaxCrossEntropy(labels, model.forward(x) as tf.Tensor2D) as tf.Scalar;
  const first = (await loss().data())[0]!;
  for (let i = 0; i < 8; i++) tf.dispose(opt.minimize(loss, true, vars) ?? []);
  const last = (await loss().data())[0]!;
  expect(Number.isFinite(last)).toBe(true);
  expect(last).toBeLessThan(first * 0.7);
  // every parameter received a gradient (nothing is disconnected)
  const { grads } = tf.variableGrads(loss, vars);
  const dead = Object.entries(grads).filter(([, g]) => (tf.max(tf.abs(g)).dataSync()[0] ?? 0) === 0).map(([n]) => n);
  expect(dead).toEqual([]);
  tf.dispose([x, labels, ...Object.values(grads)]);
  model.dispose();
});
