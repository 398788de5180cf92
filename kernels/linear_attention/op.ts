/**
 * Non-causal linear attention with a normaliser, as HER-Seg's LGViT uses it (architectures.md §2.3):
 *
 *   linearAttention(q, k, qRot, kRot, v, { eps = 1e-6 })
 *     q, k        [B, H, N, Dk]  positive feature maps (ELU+1), un-rotated: used only by the normaliser
 *     qRot, kRot  [B, H, N, Dk]  the same after 2-D RoPE: used only in the numerator
 *     v           [B, H, N, Dv]
 *   → y [B, H, N, Dv],  y_n = (qRot_n · KV) / (q_n · mean_n'(k_n') + eps),  KV = Σ_n kRot_nᵀ v_n / N.
 *
 * Runs the registered GPU kernel when the active backend has one, the tfjs-ops reference otherwise.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { LinearAttention, type LinearAttentionAttrs } from '../kernel_names.ts';
import { linearAttentionReference } from './reference.ts';

export interface LinearAttentionOptions {
  /** Added to the normaliser's denominator (HER-Seg: 1e-6). */
  eps?: number;
}

export function linearAttention(q: tf.Tensor4D, k: tf.Tensor4D, qRot: tf.Tensor4D, kRot: tf.Tensor4D, v: tf.Tensor4D, opts: LinearAttentionOptions = {}): tf.Tensor4D {
  const same = (a: tf.Tensor, b: tf.Tensor) => a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
  if (q.rank !== 4 || !same(q, k) || !same(q, qRot) || !same(q, kRot)) {
    throw new GatedError('shape', `q, k, qRot and kRot must share one [B, H, N, Dk] shape; got q ${q.shape}, k ${k.shape}, qRot ${qRot.shape}, kRot ${kRot.shape}`);
  }
  if (v.rank !== 4 || v.shape[0] !== q.shape[0] || v.shape[1] !== q.shape[1] || v.shape[2] !== q.shape[2]) {
    throw new GatedError('shape', `v must be [B, H, N, Dv] matching q's [B, H, N] = [${q.shape.slice(0, 3)}]; got ${v.shape}`);
  }
  const eps = opts.eps ?? 1e-6;
  if (forceReference() || tf.getKernel(LinearAttention, tf.getBackend()) === undefined) {
    return linearAttentionReference(q, k, qRot, kRot, v, eps);
  }
  const attrs: LinearAttentionAttrs = { eps };
  return tf.engine().runKernel(LinearAttention, { q, k, qRot, kRot, v }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
}
