/**
 * linearFused(x [..., K], w [K, N], { bias [N], activation, residual [..., N] }) = act(x·w + bias) + residual,
 * [..., N]: one kernel on WebGPU (the tiled matmul with the bias, activation and residual applied as each
 * output is written) instead of two to four. A projection followed by a bias add, a GELU or a residual add is
 * the commonest sequence in every backbone, and a ViG forward on the GPU is bound by the number of kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference, recordingGradients } from '../flags.ts';
import { LinearFused, type Activation, type LinearFusedAttrs } from '../kernel_names.ts';
import { linearReference } from './reference.ts';

export interface LinearOptions {
  bias?: tf.Tensor;
  activation?: Activation;
  /** Added after the activation (a residual connection). */
  residual?: tf.Tensor;
  /**
   * w (from `packGatedPairs`) holds a gated MLP's [gate | value] projection in tiles of 64 gate and 64 value
   * columns; the output is SiLU(gate)·value, half as wide, written by the matmul itself. Needs N a multiple of 128.
   */
  gated?: boolean;
  /** > 0: RMSNorm x's rows first (no weight: fold it into w's rows), computed inside the matmul. */
  rmsNormEps?: number;
}

/**
 * [gate | value] columns of w [K, 2I] (I a multiple of 64) rearranged into the tiles a gated linearFused reads:
 * for each 64 hidden units, their 64 gate columns, then their 64 value columns.
 */
export function packGatedPairs(w: tf.Tensor): tf.Tensor2D {
  const [K, N] = w.shape as [number, number];
  if (w.rank !== 2 || N % 128 !== 0) throw new GatedError('shape', `a gated weight needs [K, 2I] with I a multiple of 64; got [${w.shape}]`);
  return tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(w, [K, 2, N / 128, 64]), [0, 2, 1, 3]), [K, N]) as tf.Tensor2D);
}

export function linearFused(x: tf.Tensor, w: tf.Tensor, opts: LinearOptions = {}): tf.Tensor {
  const K = x.shape[x.rank - 1];
  if (x.rank < 1 || w.rank !== 2 || w.shape[0] !== K) throw new GatedError('shape', `x must be [..., K] and w [K, N] with the same K; got x [${x.shape}], w [${w.shape}]`);
  const N = w.shape[1]!;
  const gated = Boolean(opts.gated);
  if (gated && (N % 128 !== 0 || (opts.activation ?? 'linear') !== 'linear')) throw new GatedError('shape', `a gated linear needs w's width a multiple of 128 and no activation; got [${w.shape}], ${opts.activation}`);
  const outN = gated ? N / 2 : N;
  const outShape = [...x.shape.slice(0, -1), outN];
  if (opts.bias && (opts.bias.rank !== 1 || opts.bias.shape[0] !== N)) throw new GatedError('shape', `bias must be [${N}]; got [${opts.bias.shape}]`);
  if (opts.residual && opts.residual.shape.join() !== outShape.join()) throw new GatedError('shape', `residual must match the output [${outShape}]; got [${opts.residual.shape}]`);
  const activation = opts.activation ?? 'linear';
  const rmsNormEps = opts.rmsNormEps ?? 0;
  if (!(rmsNormEps >= 0)) throw new GatedError('config', `rmsNormEps must be ≥ 0; got ${rmsNormEps}`);
  if (forceReference() || x.dtype !== 'float32' || tf.getKernel(LinearFused, tf.getBackend()) === undefined) {
    return tf.tidy(() => {
      const a = tf.reshape(x, [-1, K!]) as tf.Tensor2D;
      const res = opts.residual ? (tf.reshape(opts.residual, [-1, outN]) as tf.Tensor2D) : null;
      return tf.reshape(linearReference(a, w as tf.Tensor2D, (opts.bias as tf.Tensor1D) ?? null, activation, res, gated, rmsNormEps), outShape);
    });
  }
  // the kernel reads x as [rows, K] and writes [..., N] whatever the leading axes: no reshapes around it
  const attrs: LinearFusedAttrs = { activation, hasBias: Boolean(opts.bias), hasResidual: Boolean(opts.residual), gated, rmsNormEps };
  if (!recordingGradients()) {
    // no tape saves the inputs: absent ones are left out instead of uploading a placeholder per call
    const inputs: Record<string, tf.Tensor> = { a: x, w };
    if (opts.bias) inputs.bias = opts.bias;
    if (opts.residual) inputs.residual = opts.residual;
    return tf.engine().runKernel(LinearFused, inputs, attrs as unknown as NamedAttrMap) as tf.Tensor;
  }
  return tf.tidy(() => {
    const dummy = () => tf.zeros([1]);
    return tf.engine().runKernel(LinearFused, { a: x, w, bias: opts.bias ?? dummy(), residual: opts.residual ?? dummy() }, attrs as unknown as NamedAttrMap) as tf.Tensor;
  });
}
