/** LayerNorm over the last axis (biased variance, as PyTorch and Flax), in tfjs ops: the definition the kernel is checked against. */
import * as tf from '@tensorflow/tfjs-core';

export function layerNormReference(x: tf.Tensor, gamma: tf.Tensor1D | null, beta: tf.Tensor1D | null, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    if (gamma) y = tf.mul(y, gamma);
    if (beta) y = tf.add(y, beta);
    return y;
  });
}
