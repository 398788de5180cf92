/** Slice, split into heads, (logσ(·)/scale): tfjs ops. */
import * as tf from '@tensorflow/tfjs-core';
import type { TokensToHeadsAttrs } from '../kernel_names.ts';

export function tokensToHeadsReference(p: tf.Tensor3D, { begin, size, heads, logSigmoidScale }: TokensToHeadsAttrs): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, N] = p.shape;
    let x: tf.Tensor = tf.slice(p, [0, 0, begin], [B, N, size]);
    // logσ(x) = −softplus(−x) from ops with their own gradients: tf.logSigmoid's custom gradient reads its input
    // from a closure, which a tidy has freed by the time the backward pass runs on an intermediate
    if (logSigmoidScale > 0) x = tf.div(tf.neg(tf.softplus(tf.neg(x))), logSigmoidScale);
    return tf.transpose(tf.reshape(x, [B, N, heads, size / heads]), [0, 2, 1, 3]) as tf.Tensor4D;
  });
}
