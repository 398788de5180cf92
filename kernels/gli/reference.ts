/** GLI merge in tfjs ops: the definition the kernel is checked against. */
import * as tf from '@tensorflow/tfjs-core';
import type { GliMergeAttrs } from '../kernel_names.ts';
import { rmsNormReference } from '../rms_norm/reference.ts';

export function gliMergeReference(o: tf.Tensor4D, local: tf.Tensor3D, gate: tf.Tensor3D, gammaO: tf.Tensor1D, gammaL: tf.Tensor1D, { gateOffset, eps, activation }: GliMergeAttrs): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, h, N, dv] = o.shape;
    const oN = rmsNormReference(tf.transpose(o, [0, 2, 1, 3]), gammaO, eps); // [B, N, h, dv]
    const lN = rmsNormReference(tf.reshape(local, [B, N, h, dv]), gammaL, eps);
    const g = tf.reshape(tf.sigmoid(tf.slice(gate, [0, 0, gateOffset], [B, N, h * dv])), [B, N, h, dv]);
    let m = tf.reshape(tf.add(tf.mul(g, oN), tf.mul(tf.sub(1, g), lN)), [B, N, h * dv]);
    if (activation === 'silu') m = tf.mul(m, tf.sigmoid(m));
    return m as tf.Tensor3D;
  });
}
