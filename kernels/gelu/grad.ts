/** Gradient of GeluFused: the vector-Jacobian product of the reference composite. */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { GeluFused, type GeluAttrs } from '../kernel_names.ts';
import { vjp } from '../vjp.ts';
import { geluReference } from './reference.ts';

export const geluGradConfig: GradConfig = {
  kernelName: GeluFused,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [x] = saved as tf.Tensor[];
    const { approximate } = attrs as unknown as GeluAttrs;
    const [dx] = vjp((a) => geluReference(a, approximate), [x!], dy as tf.Tensor);
    return { x: () => dx! };
  },
};
