/** Gradient of GliMerge: one kernel per input on WebGPU (backward.ts), the VJP of the reference elsewhere. */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { GliMerge, type GliMergeAttrs } from '../kernel_names.ts';
import { gliMergeGrads } from './backward.ts';

export const gliMergeGradConfig: GradConfig = {
  kernelName: GliMerge,
  inputsToSave: ['o', 'local', 'gate', 'gammaO', 'gammaL'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const ins = saved as tf.Tensor[];
    const a = attrs as unknown as GliMergeAttrs;
    return gliMergeGrads(dy as tf.Tensor, ins, a);
  },
};
