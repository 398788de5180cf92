/**
 * ViG's 2D gating locality injection (architectures.md §1.3 step 6), with the head merge and the optional SiLU:
 *   gliMerge(o [B, h, N, dv], local [B, N, h·dv], gate [B, N, G], γo [dv], γl [dv], { gateOffset, eps, activation })
 *   = act(σ(g) ⊙ RMSNorm_dv(o; γo) + (1 − σ(g)) ⊙ RMSNorm_dv(local; γl)) as [B, N, h·dv],
 * g = gate[..., gateOffset : gateOffset + h·dv] (the gate logits with their bias, read where a packed projection
 * left them). One kernel on WebGPU where the composite takes a transpose, two norms and seven elementwise kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { GliMerge, type GliMergeAttrs } from '../kernel_names.ts';
import { gliMergeReference } from './reference.ts';

export interface GliMergeOptions {
  gateOffset?: number;
  eps: number;
  activation?: 'linear' | 'silu';
}

export function gliMerge(o: tf.Tensor4D, local: tf.Tensor3D, gate: tf.Tensor3D, gammaO: tf.Tensor1D, gammaL: tf.Tensor1D, opts: GliMergeOptions): tf.Tensor3D {
  const [B, h, N, dv] = o.shape;
  const C = h * dv;
  if (o.rank !== 4 || local.rank !== 3 || local.shape.join() !== [B, N, C].join()) throw new GatedError('shape', `o must be [B, h, N, dv] and local [B, N, h·dv]; got o [${o.shape}], local [${local.shape}]`);
  const gateOffset = opts.gateOffset ?? 0;
  if (gate.rank !== 3 || gate.shape[0] !== B || gate.shape[1] !== N || !Number.isInteger(gateOffset) || gateOffset < 0 || gateOffset + C > gate.shape[2]) {
    throw new GatedError('shape', `gate must be [${B}, ${N}, G] with columns [${gateOffset}, ${gateOffset + C}) inside G; got [${gate.shape}]`);
  }
  if (gammaO.shape.join() !== `${dv}` || gammaL.shape.join() !== `${dv}`) throw new GatedError('shape', `gammaO and gammaL must be [${dv}]; got [${gammaO.shape}] and [${gammaL.shape}]`);
  if (!(opts.eps > 0)) throw new GatedError('config', `eps must be positive; got ${opts.eps}`);
  const attrs: GliMergeAttrs = { gateOffset, eps: opts.eps, activation: opts.activation ?? 'linear' };
  if (forceReference() || tf.getKernel(GliMerge, tf.getBackend()) === undefined) return gliMergeReference(o, local, gate, gammaO, gammaL, attrs);
  return tf.engine().runKernel(GliMerge, { o, local, gate, gammaO, gammaL }, attrs as unknown as NamedAttrMap) as tf.Tensor3D;
}
