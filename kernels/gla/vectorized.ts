/**
 * Chunked GLA in tfjs ops with no loop over chunks, for the backward pass: every chunk's intra-chunk part is
 * one batched computation, and the states entering the chunks come from a log-depth (Hillis–Steele) scan over
 * the pairs (γ_c, ΔS_c), composed as (γ₂, ΔS₂)∘(γ₁, ΔS₁) = (γ₁γ₂, γ₂ΔS₁ + ΔS₂) (architectures.md §1.6,
 * option B). Autodiff through it gives gradients in O(log(T/16)) batched ops instead of T/16 sequential steps.
 * Same maths and numerics as reference.ts (only in-chunk differences G_i − G_j, i ≥ j, are exponentiated).
 * Memory: the intra-chunk term holds [B·H·T/16, 16, 16, Dk] floats, the scan log2(T/16) state tensors.
 */
import * as tf from '@tensorflow/tfjs-core';

const C = 16;

/** o = acc + scale · scan(q, k, v, logDecay); reverse scans from the end. Layout [B, H, T, D]. */
export function glaVectorized(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecay: tf.Tensor4D, acc: tf.Tensor4D, reverse: boolean, scale: number): tf.Tensor4D {
  return tf.tidy(() => {
    if (!reverse) return tf.add(acc, forward(q, k, v, logDecay, scale)) as tf.Tensor4D;
    const r = (x: tf.Tensor4D) => tf.reverse(x, 2);
    return tf.add(acc, r(forward(r(q), r(k), r(v), r(logDecay), scale))) as tf.Tensor4D;
  });
}

function forward(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, g: tf.Tensor4D, scale: number): tf.Tensor4D {
  const [B, H, T, Dk] = q.shape;
  const Dv = v.shape[3];
  const nC = Math.ceil(T / C);
  const pad = nC * C - T;
  // zero padding: α = 1 and k = v = 0 past T add nothing
  const chunks = (x: tf.Tensor4D, d: number) => tf.reshape(pad ? tf.pad(x, [[0, 0], [0, 0], [0, pad], [0, 0]]) : x, [B * H * nC, C, d]);
  const [Q, K, V, Gs] = [chunks(q, Dk), chunks(k, Dk), chunks(v, Dv), chunks(g, Dk)];
  const n = B * H * nC;
  // in-chunk inclusive cumsum as a lower-triangular matmul (tfjs's Cumsum gradient is wrong off the last axis)
  const lower = tf.broadcastTo(tf.reshape(tf.linalg.bandPart(tf.ones([C, C]), -1, 0), [1, C, C]), [n, C, C]) as tf.Tensor3D;
  const G = tf.matMul(lower, Gs as tf.Tensor3D); // [n, C, Dk]
  // intra-chunk: A_ij = Σ_d Q_id K_jd exp(G_id − G_jd), j ≤ i; the upper triangle is pushed to −1e30 first
  const mask = tf.reshape(tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([C, C]), -1, 0)), -1e30), [1, C, C, 1]);
  const diff = tf.add(tf.sub(tf.expandDims(G, 2), tf.expandDims(G, 1)), mask); // [n, C, C, Dk]
  const A = tf.sum(tf.mul(tf.mul(tf.expandDims(Q, 2), tf.expandDims(K, 1)), tf.exp(diff)), 3); // [n, C, C]
  const intra = tf.matMul(A as tf.Tensor3D, V as tf.Tensor3D); // [n, C, Dv]
  // per chunk: γ = exp(G_last) and ΔS = (K ⊙ exp(G_last − G))ᵀ V
  const last = tf.slice(G, [0, C - 1, 0], [n, 1, Dk]); // [n, 1, Dk]
  const dS = tf.matMul(tf.mul(K, tf.exp(tf.sub(last, G))) as tf.Tensor3D, V as tf.Tensor3D, true, false); // [n, Dk, Dv]
  const gamma = tf.reshape(tf.exp(last), [B * H, nC, Dk, 1]) as tf.Tensor4D;
  const entering = exclusiveScan(gamma, tf.reshape(dS, [B * H, nC, Dk, Dv]) as tf.Tensor4D); // [BH, nC, Dk, Dv]
  const inter = tf.matMul(tf.mul(Q, tf.exp(G)) as tf.Tensor3D, tf.reshape(entering, [n, Dk, Dv]) as tf.Tensor3D);
  const out = tf.reshape(tf.mul(tf.add(intra, inter), scale), [B, H, nC * C, Dv]) as tf.Tensor4D;
  return pad ? (tf.slice(out, [0, 0, 0, 0], [B, H, T, Dv]) as tf.Tensor4D) : out;
}

/** States entering each chunk, [BH, nC, Dk, Dv], from per-chunk decays γ [BH, nC, Dk, 1] and updates ΔS. */
function exclusiveScan(gamma: tf.Tensor4D, dS: tf.Tensor4D): tf.Tensor4D {
  const [BH, nC, Dk, Dv] = dS.shape;
  let gam: tf.Tensor4D = gamma;
  let S: tf.Tensor4D = dS;
  for (let o = 1; o < nC; o *= 2) {
    // chunk c takes in chunk c − o: S_c += γ_c ⊙ S_{c−o}, γ_c ⊙= γ_{c−o}; before the start: S = 0, γ = 1
    const prevS = tf.pad(tf.slice(S, [0, 0, 0, 0], [BH, nC - o, Dk, Dv]), [[0, 0], [o, 0], [0, 0], [0, 0]]);
    const prevG = tf.pad(tf.slice(gam, [0, 0, 0, 0], [BH, nC - o, Dk, 1]), [[0, 0], [o, 0], [0, 0], [0, 0]], 1);
    S = tf.add(S, tf.mul(gam, prevS)) as tf.Tensor4D;
    gam = tf.mul(gam, prevG) as tf.Tensor4D;
  }
  // S_c is now the state after chunk c; the state entering chunk c is the one after c − 1
  return tf.pad(tf.slice(S, [0, 0, 0, 0], [BH, nC - 1, Dk, Dv]), [[0, 0], [1, 0], [0, 0], [0, 0]]) as tf.Tensor4D;
}
