/**
 * Gated linear attention: the tfjs-ops reference against a naive per-token recurrence in numpy (code no
 * one here wrote the TS of), on cpu and wasm; the WebGPU kernel (SwiftShader) against the reference,
 * forward and gradients, on odd shapes; shader keys carry every baked size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { biGatedLinearAttention, gatedLinearAttention } from '../../kernels/gla/op.ts';
import { glaReference } from '../../kernels/gla/reference.ts';
import { glaVectorized } from '../../kernels/gla/vectorized.ts';
import { GlaChunkStatePass, GlaCumsumPass, GlaOutputPass, GlaStateScanPass } from '../../kernels/gla/chunked_programs.ts';
import { GlaChunkOutputProgram } from '../../kernels/gla/webgpu_chunk_output.ts';
import { GlaChunkStateProgram, GlaStateScanProgram } from '../../kernels/gla/webgpu_chunk_programs.ts';
import { glaChunkSize } from '../../kernels/gla/webgpu.ts';
import { setForceReference } from '../../kernels/flags.ts';
import { maxAbsDiff } from '../_helpers/close.ts';
import { pythonJson } from '../_helpers/python.ts';

const NAIVE = `
import json, sys, numpy as np
c = json.loads(sys.stdin.read())
B, H, T, Dk, Dv = c['shape']
q, k, g = (np.array(c[n], np.float64).reshape(B, H, T, Dk) for n in ('q', 'k', 'g'))
v = np.array(c['v'], np.float64).reshape(B, H, T, Dv)
def scan(q, k, v, g, rev):
    o = np.zeros((B, H, T, Dv))
    for b in range(B):
        for h in range(H):
            S = np.zeros((Dk, Dv))
            ts = range(T - 1, -1, -1) if rev else range(T)
            for t in ts:
                S = np.exp(g[b, h, t])[:, None] * S + np.outer(k[b, h, t], v[b, h, t])
                o[b, h, t] = c['scale'] * q[b, h, t] @ S
    return o
gb = np.array(c['gb'], np.float64).reshape(B, H, T, Dk)
print(json.dumps({'fwd': scan(q, k, v, g, False).ravel().tolist(), 'rev': scan(q, k, v, g, True).ravel().tolist(),
                  'bi': ((scan(q, k, v, g, False) + scan(q, k, v, gb, True)) / 2).ravel().tolist()}))
`;

function rand(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

function inputs(B: number, H: number, T: number, Dk: number, Dv: number, seed: number) {
  const n = B * H * T * Dk;
  return {
    q: rand(n, seed),
    k: rand(n, seed + 1),
    v: rand(B * H * T * Dv, seed + 2),
    // log-sigmoid(z)/16 as ViG makes them, with strong decays mixed in
    g: rand(n, seed + 3, -8, 3).map((z) => -Math.log1p(Math.exp(-z)) / 16 - (z < -6 ? 4 : 0)),
    gb: rand(n, seed + 4, -8, 3).map((z) => -Math.log1p(Math.exp(-z)) / 16),
  };
}

const SHAPES: [number, number, number, number, number][] = [
  [1, 1, 5, 4, 3], // shorter than a chunk, one head (d_v odd: the general 16-token kernel)
  [2, 3, 37, 8, 5], // batch > 1, length not a multiple of 16 (general kernel)
  [1, 2, 64, 16, 16], // exact chunks (64-token three-pass kernel)
  [2, 1, 90, 8, 12], // batch > 1, two 64-token chunks, the last partial, every sub-chunk case (three-pass kernel)
];

function tensors(sh: number[], x: ReturnType<typeof inputs>) {
  const [B, H, T, Dk, Dv] = sh as [number, number, number, number, number];
  return {
    q: tf.tensor4d(x.q, [B, H, T, Dk]),
    k: tf.tensor4d(x.k, [B, H, T, Dk]),
    v: tf.tensor4d(x.v, [B, H, T, Dv]),
    g: tf.tensor4d(x.g, [B, H, T, Dk]),
    gb: tf.tensor4d(x.gb, [B, H, T, Dk]),
  };
}

describe('GLA reference vs naive recurrence (numpy, float64)', () => {
  for (const device of ['cpu', 'wasm'] as const) {
    it.each(SHAPES)(`${device}: B=%i H=%i T=%i Dk=%i Dv=%i`, async (B, H, T, Dk, Dv) => {
      await selectDevice(device);
      const x = inputs(B, H, T, Dk, Dv, B * 100 + T);
      const scale = Dk ** -0.5;
      const ref = pythonJson<{ fwd: number[]; rev: number[]; bi: number[] }>(NAIVE, [], { input: JSON.stringify({ shape: [B, H, T, Dk, Dv], scale, ...x }) });
      const t = tensors([B, H, T, Dk, Dv], x);
      // fp32 against fp64: tolerance 1e-4 absolute on O(1) outputs
      expect(await maxAbsDiff(gatedLinearAttention(t.q, t.k, t.v, t.g), ref.fwd)).toBeLessThan(1e-4);
      expect(await maxAbsDiff(gatedLinearAttention(t.q, t.k, t.v, t.g, { reverse: true }), ref.rev)).toBeLessThan(1e-4);
      expect(await maxAbsDiff(biGatedLinearAttention(t.q, t.k, t.v, t.g, t.gb), ref.bi)).toBeLessThan(1e-4);
      tf.dispose(Object.values(t));
    });
  }
});

describe('GLA loop-free chunked form (the backward path) vs reference, cpu', () => {
  it.each(SHAPES)('forward and gradients, both directions: B=%i H=%i T=%i Dk=%i Dv=%i', async (B, H, T, Dk, Dv) => {
    await selectDevice('cpu');
    const t = tensors([B, H, T, Dk, Dv], inputs(B, H, T, Dk, Dv, 11 + T));
    const acc = tf.randomNormal([B, H, T, Dv], 0, 1, 'float32', 5) as tf.Tensor4D;
    for (const reverse of [false, true]) {
      const before = tf.memory().numTensors;
      const [a, b] = [glaVectorized(t.q, t.k, t.v, t.g, acc, reverse, 0.4), glaReference(t.q, t.k, t.v, t.g, acc, reverse, 0.4)];
      expect(await maxAbsDiff(a, b)).toBeLessThan(1e-4);
      tf.dispose([a, b]);
      expect(tf.memory().numTensors).toBe(before);
      const loss = (f: typeof glaReference) => (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, g: tf.Tensor) =>
        tf.sum(tf.square(f(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, g as tf.Tensor4D, acc, reverse, 0.4)));
      const [gv, gr] = [tf.grads(loss(glaVectorized))([t.q, t.k, t.v, t.g]), tf.grads(loss(glaReference))([t.q, t.k, t.v, t.g])];
      for (let i = 0; i < 4; i++) expect(await maxAbsDiff(gv[i]!, gr[i]!), `grad ${i}`).toBeLessThan(1e-3);
      tf.dispose([...gv, ...gr]);
    }
    tf.dispose([acc, ...Object.values(t)]);
  });
});

describe('GLA WebGPU kernel (SwiftShader) vs reference', () => {
  beforeAll(async () => {
    await selectDevice('webgpu', { allowSoftware: true });
  });
  afterAll(() => setForceReference(false));

  it.each(SHAPES)('forward and gradients: B=%i H=%i T=%i Dk=%i Dv=%i', async (B, H, T, Dk, Dv) => {
    const t = tensors([B, H, T, Dk, Dv], inputs(B, H, T, Dk, Dv, 7 + T));
    const before = tf.memory().numTensors;
    const fast = biGatedLinearAttention(t.q, t.k, t.v, t.g, t.gb);
    setForceReference(true);
    const slow = biGatedLinearAttention(t.q, t.k, t.v, t.g, t.gb);
    setForceReference(false);
    expect(await maxAbsDiff(fast, slow)).toBeLessThan(1e-4);
    tf.dispose([fast, slow]);
    expect(tf.memory().numTensors).toBe(before);
    // gradients of a weighted sum through the kernel equal those through the reference
    const w = tf.randomNormal([B, H, T, Dv], 0, 1, 'float32', 3);
    const loss = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(biGatedLinearAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, g as tf.Tensor4D, t.gb), w));
    const gFast = tf.grads(loss)([t.q, t.k, t.v, t.g]);
    setForceReference(true);
    const gSlow = tf.grads(loss)([t.q, t.k, t.v, t.g]);
    setForceReference(false);
    for (let i = 0; i < 4; i++) expect(await maxAbsDiff(gFast[i]!, gSlow[i]!), `grad ${i}`).toBeLessThan(1e-3);
    tf.dispose([...gFast, ...gSlow, w, ...Object.values(t)]);
  });

  it('the kernel really runs (not the fallback); its passes bake no size (one shader serves every shape)', async () => {
    for (const P of [GlaCumsumPass, GlaChunkStatePass, GlaStateScanPass, GlaOutputPass]) {
      const a = new P([1, 1, 4, 3]);
      const b = new P([2, 2, 9, 5]);
      expect(a.shaderKey).toBe(b.shaderKey);
      expect(a.getUserCode()).toBe(b.getUserCode());
      // the only literal sizes are the chunk length (16), its last index (15) and the workgroup size (256)
      expect([...a.getUserCode().matchAll(/\b\d+\b/g)].map((m) => Number(m[0])).filter((n) => n > 1 && n !== 16 && n !== 15 && n !== 256)).toEqual([]);
    }
    expect(tf.getKernel('GatedLinearAttention', 'webgpu')).toBeDefined();
    expect(tf.getBackend()).toBe('webgpu');
    // same program class, two shapes in a row: both correct (no stale compiled shader reused wrongly)
    for (const [B, H, T, Dk, Dv] of [[1, 1, 9, 8, 3], [1, 2, 21, 8, 7], [1, 1, 9, 8, 4], [1, 2, 70, 8, 4], [1, 1, 2100, 4, 4]] as const) {
      const t = tensors([B, H, T, Dk, Dv], inputs(B, H, T, Dk, Dv, 99));
      const zeros = tf.zeros([B, H, T, Dv]) as tf.Tensor4D;
      // the loop-free form (checked against the reference above) keeps the 2100-token case quick
      const ref = glaVectorized(t.q, t.k, t.v, t.g, zeros, false, 0.3);
      const out = gatedLinearAttention(t.q, t.k, t.v, t.g, { scale: 0.3 });
      expect(await maxAbsDiff(out, ref)).toBeLessThan(1e-4);
      tf.dispose([zeros, ref, out, ...Object.values(t)]);
    }
  });

  it('the three-pass kernel bakes d_k, d_v and the chunk, and names them in its keys', () => {
    // the shapes above reach both kernels: the general one when d_v is not a multiple of 4
    expect(glaChunkSize(4, 3, 32768, 256)).toBe(0);
    expect(glaChunkSize(8, 5, 32768, 256)).toBe(0);
    expect(glaChunkSize(16, 16, 32768, 256)).toBe(64);
    expect(glaChunkSize(8, 12, 32768, 256)).toBe(64);
    expect(glaChunkSize(32, 64, 32768, 256)).toBe(64); // ViG's head fits SwiftShader's 32 KiB
    expect(glaChunkSize(64, 64, 32768, 256)).toBe(16);
    expect(glaChunkSize(64, 128, 32768, 256)).toBe(0);
    const progs = (dk: number, dv: number, c: number, T: number) => [
      new GlaChunkStateProgram(2, Math.ceil(T / c), dk, dv, c),
      new GlaStateScanProgram(2, Math.ceil(T / c), dk, dv, c, 'apply'),
      new GlaChunkOutputProgram([1, 2, T, dv], Math.ceil(T / c), dk, dv, c),
    ];
    const [a, b, c, d] = [progs(8, 12, 64, 150), progs(8, 12, 64, 9000), progs(16, 12, 64, 150), progs(8, 12, 32, 150)];
    for (let i = 0; i < 3; i++) {
      expect(a[i]!.shaderKey).toBe(b[i]!.shaderKey); // T and the chunk count are uniforms
      expect(a[i]!.getUserCode()).toBe(b[i]!.getUserCode());
      expect(c[i]!.shaderKey).not.toBe(a[i]!.shaderKey);
      expect(d[i]!.shaderKey).not.toBe(a[i]!.shaderKey);
    }
  });
});
