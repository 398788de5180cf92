/** RMSNorm over the last axis with a per-channel weight, in tfjs ops (the definition the kernel is checked against). */
import * as tf from '@tensorflow/tfjs-core';

export function rmsNormReference(x: tf.Tensor, gamma: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), gamma));
}
