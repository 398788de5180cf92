/** The tiny restoration model the restore and service tests share: ViG-H test variant + one-layer residual head. */
import * as tf from '@tensorflow/tfjs-core';
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
