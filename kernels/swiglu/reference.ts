/** SiLU(gate) ⊙ value with u = [gate | value] on the last axis, in tfjs ops. */
import * as tf from '@tensorflow/tfjs-core';

export function swigluReference(u: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [a, b] = tf.split(u, 2, -1);
    return tf.mul(tf.mul(a!, tf.sigmoid(a!)), b!);
  });
}
