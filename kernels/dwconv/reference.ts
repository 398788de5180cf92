/** Depthwise k×k convolution (NHWC, any stride, 'same' or 'valid') + bias + activation, times an optional gate: tfjs ops. */
import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from '../kernel_names.ts';

export function activate(x: tf.Tensor, activation: Activation): tf.Tensor {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return tf.relu(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    case 'silu':
      return tf.mul(x, tf.sigmoid(x));
    case 'gelu': // exact (erf) form, as PyTorch's default GELU
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
    case 'gelu_tanh': // tanh approximation, as JAX/Flax nn.gelu
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));
  }
}

export function dwconvReference(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  gate: tf.Tensor4D | null,
  activation: Activation,
  padding: 'same' | 'valid' = 'same',
  strides: [number, number] = [1, 1],
): tf.Tensor4D {
  return tf.tidy(() => {
    const y = activate(tf.add(tf.depthwiseConv2d(x, filter, strides, padding), bias), activation);
    return (gate ? tf.mul(y, gate) : y) as tf.Tensor4D;
  });
}
