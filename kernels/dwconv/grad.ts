/** Gradient of DepthwiseConv2dFused: the vector-Jacobian product of the reference composite. */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { DepthwiseConv2dFused, type DwAttrs } from '../kernel_names.ts';
import { dwconvReference } from './reference.ts';
import { vjp } from '../vjp.ts';

export const dwconvGradConfig: GradConfig = {
  kernelName: DepthwiseConv2dFused,
  inputsToSave: ['x', 'filter', 'bias', 'gate'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [x, filter, bias, gate] = saved as tf.Tensor[];
    const { activation, hasGate, padding, strides } = attrs as unknown as DwAttrs;
    if (hasGate) {
      const [dx, df, db, dg] = vjp((a, b, c, d) => dwconvReference(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor1D, d as tf.Tensor4D, activation, padding, strides), [x!, filter!, bias!, gate!], dy as tf.Tensor);
      return { x: () => dx!, filter: () => df!, bias: () => db!, gate: () => dg! };
    }
    const [dx, df, db] = vjp((a, b, c) => dwconvReference(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor1D, null, activation, padding, strides), [x!, filter!, bias!], dy as tf.Tensor);
    return { x: () => dx!, filter: () => df!, bias: () => db!, gate: () => tf.zerosLike(gate!) };
  },
};
