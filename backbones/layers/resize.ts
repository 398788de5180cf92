/**
 * Resizes with the exact semantics of the reference frameworks, as separable interpolation matrices
 * (out = Mh · X · Mwᵀ), so they run on every backend and are differentiable:
 *   torchBicubicMatrix   PyTorch F.interpolate(mode='bicubic', align_corners=False), a = −0.75, clamped taps
 *   jaxLinearMatrix      jax.image.resize(method='bilinear'): half-pixel centres; triangle kernel widened by
 *                        1/scale when downsampling (antialiased), weights renormalised over in-range taps
 */
import * as tf from '@tensorflow/tfjs-core';

export function torchBicubicMatrix(inSize: number, outSize: number): tf.Tensor2D {
  const A = -0.75;
  const cubic1 = (t: number) => ((A + 2) * t - (A + 3)) * t * t + 1; // |t| ≤ 1
  const cubic2 = (t: number) => ((A * t - 5 * A) * t + 8 * A) * t - 4 * A; // 1 < |t| < 2
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = scale * (o + 0.5) - 0.5;
    const x0 = Math.floor(src);
    const t = src - x0;
    const w = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
    for (let j = 0; j < 4; j++) {
      const idx = Math.min(Math.max(x0 - 1 + j, 0), inSize - 1);
      m[o * inSize + idx] = m[o * inSize + idx]! + w[j]!;
    }
  }
  return tf.tensor2d(m, [outSize, inSize]);
}

export function jaxLinearMatrix(inSize: number, outSize: number): tf.Tensor2D {
  const scale = outSize / inSize;
  const kscale = Math.min(scale, 1); // antialias: widen the kernel when downsampling
  const m = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) / scale - 0.5;
    let total = 0;
    for (let i = 0; i < inSize; i++) {
      const w = Math.max(0, 1 - Math.abs((i - centre) * kscale));
      m[o * inSize + i] = w;
      total += w;
    }
    if (total > 0) for (let i = 0; i < inSize; i++) m[o * inSize + i]! /= total;
  }
  return tf.tensor2d(m, [outSize, inSize]);
}

/** Applies row/column matrices to x [B, H, W, C] → [B, Ho, Wo, C]. */
export function resizeSeparable(x: tf.Tensor4D, mh: tf.Tensor2D, mw: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, H, W, C] = x.shape;
    const Ho = mh.shape[0];
    const Wo = mw.shape[0];
    // rows: [Ho, H] · [H, B·W·C]
    const xr = tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [H, B * W * C]);
    const r = tf.reshape(tf.matMul(mh, xr), [Ho, B, W, C]);
    // columns: [Wo, W] · [W, Ho·B·C]
    const xc = tf.reshape(tf.transpose(r, [2, 0, 1, 3]), [W, Ho * B * C]);
    const c = tf.reshape(tf.matMul(mw, xc), [Wo, Ho, B, C]);
    return tf.transpose(c, [2, 1, 0, 3]) as tf.Tensor4D;
  });
}
