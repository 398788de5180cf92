/**
 * Matmul for projections: `matmulFast(a, b, { transposeA, transposeB, precision })`.
 *   a: [M, K] or [batch, M, K] (transposeA: [.., K, M]); b: [K, N] or [batch|1, K, N] (transposeB: [.., N, K]).
 *   → [M, N] or [batch, M, N]. A batch of 1 on b broadcasts (shared weights).
 * precision 'fp32' (default) accumulates and rounds in fp32. 'f16' *permits* f16 inputs with f32
 * accumulation (as torch's allow_tf32 permits TF32); backends without such a kernel compute fp32.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { MatMulFast, type MatMulFastAttrs } from '../kernel_names.ts';
import { matmulReference } from './reference.ts';

export interface MatmulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
  precision?: 'fp32' | 'f16';
}

export function matmulFast<T extends tf.Tensor2D | tf.Tensor3D>(a: T, b: tf.Tensor2D | tf.Tensor3D, opts: MatmulOptions = {}): T {
  const transposeA = Boolean(opts.transposeA);
  const transposeB = Boolean(opts.transposeB);
  if ((a.rank !== 2 && a.rank !== 3) || (b.rank !== 2 && b.rank !== 3) || (a.rank === 2 && b.rank === 3)) {
    throw new GatedError('shape', `a must be [M, K] or [batch, M, K] and b [K, N] or [batch, K, N]; got a ${a.shape}, b ${b.shape}`);
  }
  const a3 = (a.rank === 2 ? [1, ...a.shape] : a.shape) as [number, number, number];
  const b3 = (b.rank === 2 ? [1, ...b.shape] : b.shape) as [number, number, number];
  const kA = transposeA ? a3[1] : a3[2];
  const kB = transposeB ? b3[2] : b3[1];
  if (kA !== kB) throw new GatedError('shape', `inner dimensions differ: a ${a.shape}${transposeA ? 'ᵀ' : ''} · b ${b.shape}${transposeB ? 'ᵀ' : ''}`);
  if (b3[0] !== 1 && b3[0] !== a3[0]) throw new GatedError('shape', `batch of b (${b3[0]}) must be 1 or a's (${a3[0]})`);
  const M = transposeA ? a3[2] : a3[1];
  const N = transposeB ? b3[1] : b3[2];
  return tf.tidy(() => {
    const x = tf.reshape(a, a3) as tf.Tensor3D;
    const y = tf.reshape(b, b3) as tf.Tensor3D;
    let out: tf.Tensor3D;
    if (forceReference() || tf.getKernel(MatMulFast, tf.getBackend()) === undefined) {
      out = matmulReference(x, y, transposeA, transposeB);
    } else {
      const attrs: MatMulFastAttrs = { transposeA, transposeB, precision: opts.precision ?? 'fp32' };
      out = tf.engine().runKernel(MatMulFast, { a: x, b: y }, attrs as unknown as NamedAttrMap) as tf.Tensor3D;
    }
    return (a.rank === 2 ? tf.reshape(out, [M, N]) : out) as T;
  });
}
