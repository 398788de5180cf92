/**
 * tokensToHeads(p [B, N, P], { begin, size, heads, logSigmoidScale }) → [B, heads, N, size/heads]: columns
 * [begin, begin + size) of a packed projection, split into heads in the layout the GLA kernels read, and with
 * logSigmoidScale > 0 turned into log-decays logσ(·)/logSigmoidScale on the way. One kernel on WebGPU where the
 * composite is a slice, a transpose and (for the gates) four elementwise kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { TokensToHeads, type TokensToHeadsAttrs } from '../kernel_names.ts';
import { tokensToHeadsReference } from './reference.ts';

export interface TokensToHeadsOptions {
  begin: number;
  size: number;
  heads: number;
  /** > 0: the output is logσ(x)/logSigmoidScale (ViG's gate_logit_normalizer); 0 (default): x itself. */
  logSigmoidScale?: number;
}

export function tokensToHeads(p: tf.Tensor3D, opts: TokensToHeadsOptions): tf.Tensor4D {
  const { begin, size, heads } = opts;
  const logSigmoidScale = opts.logSigmoidScale ?? 0;
  if (p.rank !== 3) throw new GatedError('shape', `p must be [B, N, P]; got [${p.shape}]`);
  const int = (v: number) => Number.isInteger(v) && v >= 0;
  if (!int(begin) || !int(size) || size === 0 || begin + size > p.shape[2]) throw new GatedError('shape', `columns [${begin}, ${begin + size}) are not inside the ${p.shape[2]} of p`);
  if (!int(heads) || heads === 0 || size % heads) throw new GatedError('shape', `${size} columns do not split into ${heads} heads`);
  if (!(logSigmoidScale >= 0)) throw new GatedError('config', `logSigmoidScale must be ≥ 0; got ${logSigmoidScale}`);
  const attrs: TokensToHeadsAttrs = { begin, size, heads, logSigmoidScale };
  if (forceReference() || p.dtype !== 'float32' || tf.getKernel(TokensToHeads, tf.getBackend()) === undefined) return tokensToHeadsReference(p, attrs);
  return tf.engine().runKernel(TokensToHeads, { p }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
}
