/** Gradient of LayerNormFused: the vector-Jacobian product of the reference composite. */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { LayerNormFused, type LayerNormAttrs } from '../kernel_names.ts';
import { vjp } from '../vjp.ts';
import { layerNormReference } from './reference.ts';

export const layerNormGradConfig: GradConfig = {
  kernelName: LayerNormFused,
  inputsToSave: ['x', 'gamma', 'beta'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [x, gamma, beta] = saved as tf.Tensor[];
    const { eps } = attrs as unknown as LayerNormAttrs;
    const [dx, dg, db] = vjp((a, g, b) => layerNormReference(a, g as tf.Tensor1D, b as tf.Tensor1D, eps), [x!, gamma!, beta!], dy as tf.Tensor);
    return { x: () => dx!, gamma: () => dg!, beta: () => db! };
  },
};
