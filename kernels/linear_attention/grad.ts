/** Gradient of LinearAttention: the vector-Jacobian product of the reference composite. */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { LinearAttention, type LinearAttentionAttrs } from '../kernel_names.ts';
import { vjp } from '../vjp.ts';
import { linearAttentionReference } from './reference.ts';

export const linearAttentionGradConfig: GradConfig = {
  kernelName: LinearAttention,
  inputsToSave: ['q', 'k', 'qRot', 'kRot', 'v'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const { eps } = attrs as unknown as LinearAttentionAttrs;
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) =>
      linearAttentionReference(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, d as tf.Tensor4D, e as tf.Tensor4D, eps);
    const [dq, dk, dqr, dkr, dv] = vjp(f as (...xs: tf.Tensor[]) => tf.Tensor, saved as tf.Tensor[], dy as tf.Tensor);
    return { q: () => dq!, k: () => dk!, qRot: () => dqr!, kRot: () => dkr!, v: () => dv! };
  },
};
