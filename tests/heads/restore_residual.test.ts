/** The residual restoration head: the identity at initialisation, with a body whose features reach the output conv. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { buildTaskModel } from '../../pipelines/task_model.ts';
import { restoreSpec } from '../../pipelines/train/restore_data.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

it('starts as the identity, and its 12-layer body hands the output conv features of the input scale', () => {
  const m = buildTaskModel(restoreSpec('denoise_vig_h', 'dn'), 1);
  const x = tf.randomUniform([1, 64, 64, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  const y = m.predict(x);
  expect(tf.max(tf.abs(tf.sub(y, x))).dataSync()[0]).toBe(0);
  // the output conv sees [body features (dim), input (1)]: the gradient of its kernel on each part is the
  // correlation of that part with the loss gradient, so a body whose signal dies on the way down gives
  // body columns orders of magnitude below the input's (≈1e-6 with fan-in uniform init over 12 layers)
  const target = tf.randomUniform([1, 64, 64, 1], 0, 1, 'float32', 4);
  const out = m.variables().find((v) => /^head\.out\.kernel(#|$)/.test(v.name));
  expect(out).toBeDefined();
  const { grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(m.predict(x), target))) as tf.Scalar, [out!]);
  const g = grads[out!.name]!; // [3, 3, dim + 1, 1]
  const dim = g.shape[2]! - 1;
  const body = tf.mean(tf.abs(tf.slice(g, [0, 0, 0, 0], [-1, -1, dim, -1]))).dataSync()[0]!;
  const input = tf.mean(tf.abs(tf.slice(g, [0, 0, dim, 0], [-1, -1, 1, -1]))).dataSync()[0]!;
  expect(body / input).toBeGreaterThan(1e-2);
  tf.dispose([x, y, target, ...Object.values(grads)]);
  m.dispose();
});
