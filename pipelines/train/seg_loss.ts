/** Dice + cross-entropy (nnU-Net's default), soft Dice over the foreground classes of the whole batch. */
import * as tf from '@tensorflow/tfjs-core';

/** `onehot` [B, H, W, classes] float (built on the host: integer tensors trip stock WebGPU kernels). */
export function diceCeLoss(logits: tf.Tensor4D, onehot: tf.Tensor4D, classes: number): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const ce = tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), -1)));
    const p = tf.exp(logp);
    const fg = (t: tf.Tensor) => tf.slice(t, [0, 0, 0, 1], [-1, -1, -1, classes - 1]);
    const inter = tf.sum(tf.mul(fg(p), fg(onehot)), [0, 1, 2]);
    const denom = tf.add(tf.sum(fg(p), [0, 1, 2]), tf.sum(fg(onehot), [0, 1, 2]));
    const dice = tf.div(tf.add(tf.mul(inter, 2), 1), tf.add(denom, 1));
    return tf.add(ce, tf.sub(1, tf.mean(dice))) as tf.Scalar;
  });
}

export function oneHotHost(labels: Uint8Array, classes: number): Float32Array {
  const out = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) out[i * classes + labels[i]!] = 1;
  return out;
}
