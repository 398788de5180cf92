/** GELU in tfjs ops: exact (erf, PyTorch's nn.GELU default) or the tanh approximation (Flax's nn.gelu default). */
import * as tf from '@tensorflow/tfjs-core';

export function geluReference(x: tf.Tensor, approximate: 'erf' | 'tanh'): tf.Tensor {
  return tf.tidy(() => {
    if (approximate === 'erf') return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
  });
}
