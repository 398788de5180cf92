/**
 * HER-Seg's DLA linear attention in plain tfjs ops (runs on every backend, differentiable):
 * KV = kRotᵀ·v / N, y = (qRot·KV) ⊙ 1/(q · mean_n(k) + eps). RoPE only in the numerator; the
 * normaliser uses the un-rotated (positive) q and k. Layout [B, H, N, D].
 */
import * as tf from '@tensorflow/tfjs-core';

export function linearAttentionReference(q: tf.Tensor4D, k: tf.Tensor4D, qRot: tf.Tensor4D, kRot: tf.Tensor4D, v: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const n = q.shape[2];
    // the source scales each factor by N^-1/2 (fp16 headroom); in fp32 one 1/N on the product is the same
    const kv = tf.div(tf.matMul(kRot, v, true, false), n); // [B, H, Dk, Dv]
    const num = tf.matMul(qRot, kv); // [B, H, N, Dv]
    const kMean = tf.mean(k, 2, true); // [B, H, 1, Dk]
    const den = tf.add(tf.sum(tf.mul(q, kMean), 3, true), eps); // [B, H, N, 1]
    return tf.div(num, den) as tf.Tensor4D;
  });
}
