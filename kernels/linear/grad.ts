/**
 * Gradient of LinearFused. With z = a·w + bias: dz = dy (no activation) or the VJP of the activation at z
 * (z recomputed by one fused kernel); then da = dz·wᵀ and dw = aᵀ·dz through matmulFast, dbias = Σ dz,
 * dresidual = dy.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { activate } from '../dwconv/reference.ts';
import { LinearFused, type LinearFusedAttrs } from '../kernel_names.ts';
import { matmulFast } from '../matmul/op.ts';
import { vjp } from '../vjp.ts';
import { linearFused } from './op.ts';
import { linearReference } from './reference.ts';

export const linearGradConfig: GradConfig = {
  kernelName: LinearFused,
  inputsToSave: ['a', 'w', 'bias', 'residual'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [x, w, bias, residual] = saved as tf.Tensor[];
    const { activation, hasBias, hasResidual, gated, rmsNormEps } = attrs as unknown as LinearFusedAttrs;
    const K = w!.shape[0]!;
    const N = w!.shape[1]!;
    const a = tf.reshape(x!, [-1, K]) as tf.Tensor2D;
    if (gated || rmsNormEps > 0) {
      // the gated and normalizing forms: the VJP of their reference
      const f = (p: tf.Tensor, q: tf.Tensor, b?: tf.Tensor) => linearReference(p as tf.Tensor2D, q as tf.Tensor2D, (b as tf.Tensor1D) ?? null, activation, null, gated, rmsNormEps);
      const gs = vjp(f as (...t: tf.Tensor[]) => tf.Tensor, hasBias ? [a, w!, bias!] : [a, w!], tf.reshape(dy as tf.Tensor, [-1, gated ? N / 2 : N]));
      return {
        a: () => tf.reshape(gs[0]!, x!.shape),
        w: () => gs[1]!,
        bias: () => (hasBias ? gs[2]! : tf.zerosLike(bias!)),
        residual: () => (hasResidual ? (dy as tf.Tensor) : tf.zerosLike(residual!)),
      };
    }
    const g = tf.reshape(dy as tf.Tensor, [-1, N]) as tf.Tensor2D;
    const dz = activation === 'linear'
      ? g
      : (vjp((z) => activate(z, activation), [linearFused(a, w!, hasBias ? { bias: bias! } : {})], g)[0]! as tf.Tensor2D);
    return {
      a: () => tf.reshape(matmulFast(dz, w as tf.Tensor2D, { transposeB: true }), x!.shape),
      w: () => matmulFast(a, dz, { transposeA: true }),
      bias: () => (hasBias ? tf.sum(dz, 0) : tf.zerosLike(bias!)),
      residual: () => (hasResidual ? (dy as tf.Tensor) : tf.zerosLike(residual!)),
    };
  },
};
