/** The tiny restoration model the restore and service tests share: ViG-H test variant + one-layer residual head. */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { buildTaskModel, type TaskModel } from '../../pipelines/task_model.ts';

/**
 * Built on the current backend. A fresh residual head is the identity; the weights are perturbed (seeded) so the
 * output depends on every part and differs from the input.
 */
export function tinyRestoreModel(name = 'restore_test', blocks = 0): TaskModel {
  const model = buildTaskModel({
    name,
    task: 'restore',
    description: 'tiny residual restorer for tests',
    backbone: { arch: 'test_vig_h', config: {} },
    head: { kind: 'residual', config: { dim: 8, depth: 1, ...(blocks ? { blocks } : {}) } },
    input: { channels: 1, context: 0, multipleOf: 32, normalization: { kind: 'none' }, canonical: false },
    classes: [],
  }, 4);
  for (const v of model.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.02, 'float32', 11)));
  return model;
}

/** Both models hold the same weights bit for bit, and those differ from a fresh tinyRestoreModel's (training moved them). */
export function expectSameTrainedWeights(a: TaskModel, b: TaskModel): void {
  const va = a.variables();
  const vb = b.variables();
  expect(vb.length).toBe(va.length);
  for (let i = 0; i < va.length; i++) expect(Array.from(vb[i]!.dataSync()), va[i]!.name).toEqual(Array.from(va[i]!.dataSync()));
  const fresh = tinyRestoreModel();
  expect(fresh.variables().some((v, i) => Array.from(v.dataSync()).some((x, j) => x !== va[i]!.dataSync()[j]))).toBe(true);
  fresh.dispose();
}
