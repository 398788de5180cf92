/**
 * Restoration losses: Charbonnier (a smooth L1, the usual choice for denoising/deblurring since it neither
 * over-smooths like L2 nor has L1's kink at zero) plus an optional frequency term — L1 between the 2D DFTs
 * of output and target (MIMO-UNet, NAFNet), which penalises lost high frequencies that a pixel loss
 * under-weights. The DFT is two matrix products with cosine/sine matrices, so it has gradients on every
 * backend (tfjs has no FFT gradient).
 */
import * as tf from '@tensorflow/tfjs-core';

export interface RestoreLossConfig {
  /** Charbonnier epsilon. */
  eps: number;
  /** Weight of the frequency term (0 turns it off). */
  fftWeight: number;
}

export const RESTORE_LOSS_DEFAULTS: RestoreLossConfig = { eps: 1e-3, fftWeight: 0.05 };

/** mean(sqrt((x − y)² + ε²)) over every element. */
export function charbonnier(pred: tf.Tensor, target: tf.Tensor, eps = RESTORE_LOSS_DEFAULTS.eps): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sqrt(tf.add(tf.square(tf.sub(pred, target)), eps * eps))) as tf.Scalar);
}

/**
 * Mean |Re| + |Im| of the orthonormal 2D DFT of (pred − target) over [B, H, W, C] (the DFT is linear, so
 * this is the L1 distance between the two spectra).
 */
export function fftL1(pred: tf.Tensor4D, target: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [B, H, W, C] = pred.shape;
    // [B, H, W, C] → [B·C, H, W]
    const d = tf.reshape(tf.transpose(tf.sub(pred, target), [0, 3, 1, 2]), [B * C, H, W]) as tf.Tensor3D;
    const [hr, hi] = dftMatrices(H);
    const [wr, wi] = dftMatrices(W);
    const bc = (m: tf.Tensor2D) => tf.broadcastTo(m, [B * C, m.shape[0], m.shape[1]]) as tf.Tensor3D;
    // F_H · D · F_Wᵀ with F = R + iI and D real (F_W is symmetric, so no transposes are needed)
    const ar = tf.matMul(bc(hr), d);
    const ai = tf.matMul(bc(hi), d);
    const re = tf.sub(tf.matMul(ar, bc(wr)), tf.matMul(ai, bc(wi)));
    const im = tf.add(tf.matMul(ar, bc(wi)), tf.matMul(ai, bc(wr)));
    return tf.mean(tf.add(tf.abs(re), tf.abs(im))) as tf.Scalar;
  });
}

export function restoreLoss(pred: tf.Tensor4D, target: tf.Tensor4D, cfg: RestoreLossConfig = RESTORE_LOSS_DEFAULTS): tf.Scalar {
  return tf.tidy(() => {
    const c = charbonnier(pred, target, cfg.eps);
    return (cfg.fftWeight > 0 ? tf.add(c, tf.mul(fftL1(pred, target), cfg.fftWeight)) : c) as tf.Scalar;
  });
}

// --- internal ---

const dft = new Map<number, [tf.Tensor2D, tf.Tensor2D]>();

/** Real and imaginary parts of the orthonormal n-point DFT matrix, e^{−2πi jk/n}/√n (cached, never disposed). */
function dftMatrices(n: number): [tf.Tensor2D, tf.Tensor2D] {
  let m = dft.get(n);
  if (!m) {
    const re = new Float32Array(n * n);
    const im = new Float32Array(n * n);
    const s = 1 / Math.sqrt(n);
    for (let j = 0; j < n; j++)
      for (let k = 0; k < n; k++) {
        const a = (-2 * Math.PI * ((j * k) % n)) / n;
        re[j * n + k] = Math.cos(a) * s;
        im[j * n + k] = Math.sin(a) * s;
      }
    m = [tf.keep(tf.tensor2d(re, [n, n])), tf.keep(tf.tensor2d(im, [n, n]))];
    dft.set(n, m);
  }
  return m;
}
