/**
 * HER-Seg's fine-tuning loss (architectures.md §2.5, `BinaryMaskLoss(weight=0.8)` of the released code), on mask
 * logits: with p = sigmoid(logits) and targets y ∈ {0, 1},
 *   dice = (2Σpy + 1) / (Σp + Σy + 1) over the whole batch, BCE = mean binary cross-entropy,
 *   focal = 0.8·(1 − e^(−BCE))²·BCE (from the mean BCE, a scalar), L = w·(1 − dice) + (1 − w)·focal.
 * BCE is taken from the logits (max(z, 0) − z·y + log(1 + e^(−|z|))): the same value without log(0) at saturated
 * sigmoids. With `recompute`, the full-resolution temporaries of the loss are not kept for the backward pass
 * (layers/recompute.ts); only the logits are.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { recompute } from './layers/recompute.ts';

export function herSegLoss(logits: tf.Tensor, target: tf.Tensor, opts: { weight?: number; recompute?: boolean } = {}): tf.Scalar {
  if (logits.rank !== target.rank || logits.shape.some((d, i) => d !== target.shape[i])) {
    throw new GatedError('shape', `mask logits ${logits.shape} and targets ${target.shape} must have one shape`);
  }
  const w = opts.weight ?? 0.8;
  if (!(w >= 0 && w <= 1)) throw new GatedError('config', `loss weight must be in [0, 1]; got ${w}`);
  const loss = (z: tf.Tensor, y: tf.Tensor): tf.Scalar =>
    tf.tidy(() => {
      const p = tf.sigmoid(z);
      const dice = tf.div(tf.add(tf.mul(tf.sum(tf.mul(p, y)), 2), 1), tf.add(tf.add(tf.sum(p), tf.sum(y)), 1));
      const bce = tf.mean(tf.add(tf.sub(tf.relu(z), tf.mul(z, y)), tf.log1p(tf.exp(tf.neg(tf.abs(z))))));
      const focal = tf.mul(tf.mul(tf.square(tf.sub(1, tf.exp(tf.neg(bce)))), bce), 0.8);
      return tf.add(tf.mul(tf.sub(1, dice), w), tf.mul(focal, 1 - w)) as tf.Scalar;
    });
  if (!opts.recompute) return loss(logits, target);
  return recompute(([z], [y]) => loss(z!, y!), [logits], [], [target]) as tf.Scalar;
}
