/** Gradient of RmsNormFused: the vector-Jacobian product of the reference composite. */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { RmsNormFused, type RmsNormAttrs } from '../kernel_names.ts';
import { vjp } from '../vjp.ts';
import { rmsNormReference } from './reference.ts';

export const rmsNormGradConfig: GradConfig = {
  kernelName: RmsNormFused,
  inputsToSave: ['x', 'gamma'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [x, gamma] = saved as tf.Tensor[];
    const { eps } = attrs as unknown as RmsNormAttrs;
    const [dx, dg] = vjp((a, g) => rmsNormReference(a, g as tf.Tensor1D, eps), [x!, gamma!], dy as tf.Tensor);
    return { x: () => dx!, gamma: () => dg! };
  },
};
