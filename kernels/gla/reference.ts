/**
 * Gated linear attention in plain tfjs ops (runs on every backend, differentiable): the chunked form with
 * 16-token chunks, exact intra-chunk log-space decays (only differences G_i − G_j with i ≥ j are ever
 * exponentiated, so nothing overflows) and the inter-chunk state carried chunk to chunk.
 * Layout [B, H, T, D]; logDecay ≤ 0 is log α per key channel; both scans include the current token.
 */
import * as tf from '@tensorflow/tfjs-core';

const CHUNK = 16;

/** o_t = acc_t + scale · q_t · S_t with S_t = diag(α_t) S_{t−1} + k_tᵀ v_t (reverse: scan from the end). */
export function glaReference(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, logDecay: tf.Tensor4D, acc: tf.Tensor4D, reverse: boolean, scale: number): tf.Tensor4D {
  return tf.tidy(() => {
    if (reverse) {
      const r = (x: tf.Tensor4D) => tf.reverse(x, 2);
      return tf.add(acc, r(forwardScan(r(q), r(k), r(v), r(logDecay), scale))) as tf.Tensor4D;
    }
    return tf.add(acc, forwardScan(q, k, v, logDecay, scale)) as tf.Tensor4D;
  });
}

function forwardScan(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, g: tf.Tensor4D, scale: number): tf.Tensor4D {
  const [B, H, T, Dk] = q.shape;
  const Dv = v.shape[3];
  const pad = (CHUNK - (T % CHUNK)) % CHUNK;
  // zero q/k/v and log α = 0 (α = 1) in the padding add nothing to the state or the outputs
  const padT = (x: tf.Tensor4D) => (pad ? tf.pad(x, [[0, 0], [0, 0], [0, pad], [0, 0]]) : x);
  const [qp, kp, vp, gp] = [padT(tf.mul(q, scale) as tf.Tensor4D), padT(k), padT(v), padT(g)];
  const nC = (T + pad) / CHUNK;
  const lower = tf.reshape(tf.linalg.bandPart(tf.ones([CHUNK, CHUNK]), -1, 0), [1, 1, CHUNK, CHUNK]);
  // 0 where j ≤ i, −1e30 above the diagonal: added before exp, it zeroes the non-causal terms (no bool tiling)
  const mask = tf.mul(tf.sub(1, tf.reshape(tf.linalg.bandPart(tf.ones([CHUNK, CHUNK]), -1, 0), [1, 1, CHUNK, CHUNK, 1])), -1e30);
  let S: tf.Tensor = tf.zeros([B, H, Dk, Dv]);
  const outs: tf.Tensor[] = [];
  for (let c = 0; c < nC; c++) {
    const sl = (x: tf.Tensor4D, d: number) => tf.slice(x, [0, 0, c * CHUNK, 0], [B, H, CHUNK, d]);
    const [Qc, Kc, Vc] = [sl(qp, Dk), sl(kp, Dk), sl(vp, Dv)];
    // inclusive cumsum along the chunk as a lower-triangular matmul (tfjs's Cumsum gradient is wrong for
    // non-last axes)
    const G = tf.matMul(tf.broadcastTo(lower, [B, H, CHUNK, CHUNK]), sl(gp, Dk)); // [B, H, C, Dk], non-increasing along C
    // intra-chunk: A_ij = Σ_d Q_id K_jd exp(G_id − G_jd), j ≤ i; masked differences are pushed to −1e30 first
    const diff = tf.sub(tf.expandDims(G, 3), tf.expandDims(G, 2)); // [B, H, C, C, Dk]
    const safe = tf.add(diff, mask);
    const A = tf.sum(tf.mul(tf.mul(tf.expandDims(Qc, 3), tf.expandDims(Kc, 2)), tf.exp(safe)), 4); // [B, H, C, C]
    const intra = tf.matMul(A, Vc);
    const inter = tf.matMul(tf.mul(Qc, tf.exp(G)), S);
    outs.push(tf.add(intra, inter));
    const last = tf.slice(G, [0, 0, CHUNK - 1, 0], [B, H, 1, Dk]); // [B, H, 1, Dk]
    const kDecayed = tf.mul(Kc, tf.exp(tf.sub(last, G)));
    S = tf.add(tf.mul(tf.reshape(tf.exp(last), [B, H, Dk, 1]), S), tf.matMul(kDecayed, Vc, true, false));
  }
  const out = tf.concat(outs, 2) as tf.Tensor4D;
  return pad ? (tf.slice(out, [0, 0, 0, 0], [B, H, T, Dv]) as tf.Tensor4D) : out;
}
