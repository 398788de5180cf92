/** The FPN head on a tiny ViG-H: output at input resolution, every head and backbone weight gets a gradient. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { resize } from '../../heads/fpn.ts';
import { buildTaskModel } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

it('maps features to per-pixel logits at input size, differentiably', () => {
  const m = buildTaskModel(specFromPreset('seg_test', 'segment', 't', ['bg', 'a', 'b']));
  const x = tf.randomNormal([2, 64, 96, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const y = m.predict(x);
  expect(y.shape).toEqual([2, 64, 96, 3]);
  const { grads } = tf.variableGrads(() => tf.mean(tf.square(m.predict(x))) as tf.Scalar, m.variables());
  const dead = Object.entries(grads).filter(([, g]) => (tf.max(tf.abs(g)).dataSync()[0] ?? 0) === 0).map(([n]) => n);
  expect(Object.keys(grads).length).toBe(m.variables().length);
  expect(dead).toEqual([]);
  tf.dispose([x, y, ...Object.values(grads)]);
  m.dispose();
});

it('upsamples bilinearly with half-pixel centres (PyTorch align_corners=False)', () => {
  // 1-D ramp 0,1,2,3 → 8 samples: torch gives 0, .25, .75, 1.25, 1.75, 2.25, 2.75, 3
  const x = tf.tensor4d([0, 1, 2, 3], [1, 1, 4, 1]);
  const y = resize(x, 1, 8);
  expect(Array.from(y.dataSync())).toEqual([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]);
  tf.dispose([x, y]);
});
