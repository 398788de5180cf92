/**
 * act(a·w + bias) + residual in tfjs ops (the projection through matmulFast, so the backward pass runs it too); gated:
 * SiLU(gate)·value over w's tiles of 64 gate and 64 value columns instead of the activation; rmsNormEps > 0: a's rows
 * divided by their root mean square first.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activate } from '../dwconv/reference.ts';
import type { Activation } from '../kernel_names.ts';
import { matmulFast } from '../matmul/op.ts';

export function linearReference(a: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor1D | null, activation: Activation, residual: tf.Tensor2D | null, gated = false, rmsNormEps = 0): tf.Tensor2D {
  return tf.tidy(() => {
    const x = rmsNormEps > 0 ? (tf.mul(a, tf.rsqrt(tf.add(tf.mean(tf.square(a), -1, true), rmsNormEps))) as tf.Tensor2D) : a;
    let y: tf.Tensor = matmulFast(x, w);
    if (bias) y = tf.add(y, bias);
    if (gated) {
      // tiles of 128 columns: 64 gates, then their 64 values
      const M = a.shape[0];
      const t = tf.reshape(y, [M, w.shape[1] / 128, 2, 64]);
      const [g, v] = tf.split(t, 2, 2);
      y = tf.reshape(tf.mul(tf.mul(g!, tf.sigmoid(g!)), v!), [M, w.shape[1] / 2]);
    }
    y = activate(y, activation);
    return (residual ? tf.add(y, residual) : y) as tf.Tensor2D;
  });
}
