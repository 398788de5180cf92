/** Gradient of TokensToHeads: one scatter kernel on WebGPU (backward.ts), the VJP of the reference elsewhere. */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { TokensToHeads, type TokensToHeadsAttrs } from '../kernel_names.ts';
import { tokensToHeadsGrad } from './backward.ts';

export const tokensToHeadsGradConfig: GradConfig = {
  kernelName: TokensToHeads,
  inputsToSave: ['p'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [p] = saved as tf.Tensor[];
    return { p: () => tokensToHeadsGrad(dy as tf.Tensor, p!, attrs as unknown as TokensToHeadsAttrs) };
  },
};
