/** Gradient of MultiAxisPartition: a permutation, so the gradient is the opposite direction applied to dy. */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { MultiAxisPartition, type MultiAxisAttrs } from '../kernel_names.ts';

export const multiAxisGradConfig: GradConfig = {
  kernelName: MultiAxisPartition,
  gradFunc: (dy, _saved, attrs: NamedAttrMap) => {
    const a = attrs as unknown as MultiAxisAttrs;
    const back: MultiAxisAttrs = { ...a, inverse: !a.inverse };
    return { x: () => tf.engine().runKernel(MultiAxisPartition, { x: dy as tf.Tensor }, back as unknown as NamedAttrMap) as tf.Tensor };
  },
};
