/**
 * Gated linear attention ops. `gatedLinearAttention` is one scan (forward, or reverse for the backward
 * direction); `biGatedLinearAttention` is ViG's BiGLA: shared q/k/v, separate forward and backward
 * log-decays, both scans including the current token, merged as (O^f + O^b)/2 (architectures.md §1.3
 * "Implement /2"; the following RMSNorm makes the factor irrelevant except through ε).
 * q, k, logDecay: [B, H, T, Dk]; v: [B, H, T, Dv] → [B, H, T, Dv].
 * Conventions as fla's chunk_gla: logDecay = log α ≤ 0 per key channel (fla's `g`), S_t = diag(α_t) S_{t−1}
 * + k_tᵀ v_t, o_t = scale · q_t S_t, scale defaults to Dk^-1/2. fla's layout is [B, T, H, D]; ours is
 * [B, H, T, D].
 * Runs the registered GPU kernel when the active backend has one, the tfjs-ops reference otherwise. BiGLA runs
 * as one fused kernel (both scans in one pass over q, k, v) unless GATEDVISION_GLA_KERNEL=split asks for two scans.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { GatedLinearAttention, type GlaAttrs } from '../kernel_names.ts';
import { forceReference, glaBidirectionalMode } from '../flags.ts';
import { BiGatedLinearAttention, type BiGlaAttrs } from './names.ts';
import { glaReference } from './reference.ts';

export interface GlaOptions {
  reverse?: boolean;
  scale?: number;
}

export function gatedLinearAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecay: tf.Tensor4D, opts: GlaOptions = {}): tf.Tensor4D {
  check(q, k, v, logDecay);
  const scale = opts.scale ?? q.shape[3] ** -0.5;
  return tf.tidy(() => scan(q, k, v, logDecay, zeroOutput(q, v), Boolean(opts.reverse), scale));
}

export function biGatedLinearAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecayFwd: tf.Tensor4D, logDecayBwd: tf.Tensor4D, opts: { scale?: number } = {}): tf.Tensor4D {
  check(q, k, v, logDecayFwd);
  check(q, k, v, logDecayBwd);
  const scale = (opts.scale ?? q.shape[3] ** -0.5) / 2; // the /2 merge folded into the scale
  const fused = !forceReference() && glaBidirectionalMode() === 'fused' && tf.getKernel(BiGatedLinearAttention, tf.getBackend()) !== undefined;
  if (fused) {
    const attrs: BiGlaAttrs = { scale };
    return tf.engine().runKernel(BiGatedLinearAttention, { q, k, v, logDecayFwd, logDecayBwd }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const fwd = scan(q, k, v, logDecayFwd, zeroOutput(q, v), false, scale);
    return scan(q, k, v, logDecayBwd, fwd, true, scale);
  });
}

// --- internal ---

/** The zero accumulator, filled on the device: tf.zeros would build it in host memory and upload it. */
function zeroOutput(q: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
  return tf.fill([q.shape[0], q.shape[1], q.shape[2], v.shape[3]], 0) as tf.Tensor4D;
}

function scan(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecay: tf.Tensor4D, acc: tf.Tensor4D, reverse: boolean, scale: number): tf.Tensor4D {
  if (forceReference() || tf.getKernel(GatedLinearAttention, tf.getBackend()) === undefined) {
    return glaReference(q, k, v, logDecay, acc, reverse, scale);
  }
  const attrs: GlaAttrs = { reverse, scale };
  return tf.engine().runKernel(GatedLinearAttention, { q, k, v, logDecay, acc }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
}

function check(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, g: tf.Tensor4D): void {
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (q.rank !== 4 || !same(q.shape, k.shape) || !same(q.shape, g.shape)) {
    throw new GatedError('shape', `q, k and logDecay must share one [B, H, T, Dk] shape; got q ${q.shape}, k ${k.shape}, logDecay ${g.shape}`);
  }
  if (v.rank !== 4 || !same(v.shape.slice(0, 3), q.shape.slice(0, 3))) throw new GatedError('shape', `v must be [B, H, T, Dv] matching q's [B, H, T]; got ${v.shape}`);
}
