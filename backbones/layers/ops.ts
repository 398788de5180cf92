/**
 * Small functional building blocks shared by the backbones (NHWC, float32). Norms take their epsilon
 * explicitly: PyTorch LN 1e-5, Flax LN 1e-6, ViG RMSNorm 1e-6 (architectures.md §5.1).
 */
import * as tf from '@tensorflow/tfjs-core';
import { geluFused } from '../../kernels/gelu/op.ts';
import { layerNormFused } from '../../kernels/layer_norm/op.ts';
import { rmsNormFused } from '../../kernels/rms_norm/op.ts';
import { linearFused } from '../../kernels/linear/op.ts';
import { recordingGradients } from '../../kernels/flags.ts';
import type { Param } from '../_params.ts';

/**
 * Runs `blocks` one after another from `x`. A tidy keeps every tensor made inside it until it ends, so a 12-block
 * model would hold all 12 block outputs at once; without a gradient tape (which needs them for the backward
 * pass) each block's input is freed as soon as its output exists, so one block output lives at a time. `x`, the
 * caller's, is never freed here unless `ownsInput` says it was made for this chain (a stem's output).
 */
export function chainBlocks<T extends tf.Tensor, B>(x: T, blocks: readonly B[], step: (t: T, block: B) => T, opts: { ownsInput?: boolean } = {}): T {
  const free = !recordingGradients();
  let t = x;
  for (const b of blocks) {
    const next = step(t, b);
    if (free && (t !== x || opts.ownsInput) && t !== next) t.dispose();
    t = next;
  }
  return t;
}

/**
 * `done(...tensors)` frees tensors whose last reader has run, when no gradient tape is recording (which would
 * need them for the backward pass); otherwise it does nothing and the enclosing tidy frees them at its end.
 * Decided once, when made, so one pass frees consistently.
 */
export function freer(): (...ts: tf.Tensor[]) => void {
  if (recordingGradients()) return () => {};
  return (...ts) => {
    for (const t of ts) t.dispose();
  };
}

/** x [..., in] · W [in, out] (+ b): one kernel on WebGPU, the bias added as the outputs are written. */
export function linear(x: tf.Tensor, w: Param, b?: Param): tf.Tensor {
  return linearFused(x, w.v, b ? { bias: b.v } : {});
}

/** (x - mean) · rsqrt(var + eps) · γ + β over the last axis (one fused kernel on WebGPU, the composite elsewhere). */
export function layerNorm(x: tf.Tensor, w: Param | null, b: Param | null, eps: number): tf.Tensor {
  return layerNormFused(x, w ? (w.v as tf.Tensor1D) : null, b ? (b.v as tf.Tensor1D) : null, eps);
}

/** x · rsqrt(mean(x²) + eps) · γ over the last axis (one fused kernel on WebGPU, the composite elsewhere). */
export function rmsNorm(x: tf.Tensor, w: Param, eps: number): tf.Tensor {
  return rmsNormFused(x, w.v as tf.Tensor1D, eps);
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** Exact GELU (PyTorch nn.GELU default). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return geluFused(x, 'erf');
}

/** tanh-approximated GELU (Flax nn.gelu default). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return geluFused(x, 'tanh');
}

/** conv2d with PyTorch-style symmetric zero padding; kernel [kh, kw, in, out]. */
export function conv2d(x: tf.Tensor4D, k: Param, b: Param | null, stride: number, pad: number | 'same' | 'valid'): tf.Tensor4D {
  return tf.tidy(() => {
    const padding = typeof pad === 'number' ? (pad === 0 ? 'valid' : ([[0, 0], [pad, pad], [pad, pad], [0, 0]] as [[number, number], [number, number], [number, number], [number, number]])) : pad;
    // the bias in the convolution's own kernel (tfjs's FusedConv2D) rather than in a second one — but not while
    // gradients are recorded: the fused op's gradient always computes its input's gradient, which for a stem
    // convolution is the image's (never needed; at 1024² a full-size spread of dy), while a plain convolution's
    // input gradient is taken only when something upstream needs it
    if (b && !recordingGradients()) return tf.fused.conv2d({ x, filter: k.v as tf.Tensor4D, strides: stride, pad: padding, bias: b.v });
    const y = tf.conv2d(x, k.v as tf.Tensor4D, stride, padding);
    return b ? (tf.add(y, b.v) as tf.Tensor4D) : y;
  });
}

/** Mean over the spatial axes of [B, H, W, C] → [B, C]. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  return tf.mean(x, [1, 2]) as tf.Tensor2D;
}

/**
 * TLC's local average pooling (Chu et al., ECCV 2022): the mean over a window the size the model was trained
 * at, at every position, with the border rows/columns replicated, instead of one mean over the whole image.
 * A model that learnt its global statistics on training crops then sees the same statistics on a large
 * image. A window covering the input is the global mean itself ([B, 1, 1, C], broadcast by the caller).
 */
export function localAvgPool(x: tf.Tensor4D, window: [number, number]): tf.Tensor4D {
  const [, H, W] = x.shape;
  if (window[0] >= H && window[1] >= W) return tf.mean(x, [1, 2], true) as tf.Tensor4D;
  const kh = Math.max(1, Math.min(window[0], H));
  const kw = Math.max(1, Math.min(window[1], W));
  return tf.tidy(() => {
    const p = tf.avgPool(x, [kh, kw], 1, 'valid') as tf.Tensor4D;
    const replicate = (n: number, m: number) => {
      const before = Math.floor((n - m) / 2);
      return tf.tensor1d(Array.from({ length: n }, (_, i) => Math.min(m - 1, Math.max(0, i - before))), 'int32');
    };
    return tf.gather(tf.gather(p, replicate(H, H - kh + 1), 1), replicate(W, W - kw + 1), 2) as tf.Tensor4D;
  });
}
