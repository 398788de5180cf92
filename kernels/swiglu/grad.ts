/** Gradient of SwigluFused: one kernel on WebGPU (backward.ts), the VJP of the reference elsewhere. */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradConfig } from '@tensorflow/tfjs-core';
import { SwigluFused } from '../kernel_names.ts';
import { swigluGrad } from './backward.ts';

export const swigluGradConfig: GradConfig = {
  kernelName: SwigluFused,
  inputsToSave: ['u'],
  gradFunc: (dy, saved) => {
    const [u] = saved as tf.Tensor[];
    return { u: () => swigluGrad(dy as tf.Tensor, u!) };
  },
};
