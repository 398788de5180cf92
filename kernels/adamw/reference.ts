/** One AdamW step of one parameter in tfjs ops (decoupled decay; `lrWd` 0 skips it). */
import * as tf from '@tensorflow/tfjs-core';
import type { AdamWStep } from '../kernel_names.ts';

export function adamwReference(p: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, s: AdamWStep): { param: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  return tf.tidy(() => {
    const m2 = tf.add(tf.mul(m, s.beta1), tf.mul(g, 1 - s.beta1));
    const v2 = tf.add(tf.mul(v, s.beta2), tf.mul(tf.square(g), 1 - s.beta2));
    const update = tf.div(tf.div(m2, s.b1c), tf.add(tf.sqrt(tf.div(v2, s.b2c)), s.eps));
    const decayed = s.lrWd !== 0 ? tf.sub(p, tf.mul(p, s.lrWd)) : p;
    return { param: tf.sub(decayed, tf.mul(update, s.lr)), m: m2, v: v2 };
  });
}
