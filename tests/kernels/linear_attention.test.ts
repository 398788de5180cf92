/**
 * HER-Seg DLA linear attention: the reference against the formula of architectures.md §2.3 in plain
 * float64 loops (cpu, wasm); the three-pass WGSL kernel (SwiftShader) against the reference, forward and
 * gradients; a length crossing several token blocks; no leaks; shape errors. fp32 tolerance 1e-4 relative.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { linearAttention } from '../../kernels/linear_attention/op.ts';
import { DlaOutputProgram, DlaPartialProgram } from '../../kernels/linear_attention/webgpu_program.ts';
import { describeBackends, fastAndReference } from '../_helpers/backends.ts';
import { maxAbsDiff, seeded } from '../_helpers/close.ts';

type Inputs = { q: Float32Array; k: Float32Array; qr: Float32Array; kr: Float32Array; v: Float32Array };

/** y[n, j] = Σ_d qr[n,d] (Σ_m kr[m,d] v[m,j] / N) / (Σ_d q[n,d] (Σ_m k[m,d] / N) + eps), per (b, h). */
function byLoops(x: Inputs, [BH, N, Dk, Dv]: number[], eps: number): Float64Array {
  const out = new Float64Array(BH! * N! * Dv!);
  for (let h = 0; h < BH!; h++) {
    const kv = new Float64Array(Dk! * Dv!);
    const km = new Float64Array(Dk!);
    for (let m = 0; m < N!; m++)
      for (let d = 0; d < Dk!; d++) {
        km[d]! += x.k[(h * N! + m) * Dk! + d]! / N!;
        for (let j = 0; j < Dv!; j++) kv[d * Dv! + j]! += (x.kr[(h * N! + m) * Dk! + d]! * x.v[(h * N! + m) * Dv! + j]!) / N!;
      }
    for (let n = 0; n < N!; n++) {
      let den = eps;
      for (let d = 0; d < Dk!; d++) den += x.q[(h * N! + n) * Dk! + d]! * km[d]!;
      for (let j = 0; j < Dv!; j++) {
        let num = 0;
        for (let d = 0; d < Dk!; d++) num += x.qr[(h * N! + n) * Dk! + d]! * kv[d * Dv! + j]!;
        out[(h * N! + n) * Dv! + j] = num / den;
      }
    }
  }
  return out;
}

const SHAPES: [number, number, number, number, number][] = [
  [1, 1, 5, 4, 3], // one head, fewer tokens than a block
  [2, 3, 37, 8, 5], // batch > 1, odd sizes
  [1, 2, 150, 16, 16], // several token blocks, the last partial
];

describeBackends('linearAttention (HER-Seg DLA)', ['cpu', 'wasm', 'webgpu'], (backend) => {
  it.each(SHAPES)('B=%i H=%i N=%i Dk=%i Dv=%i', async (B, H, N, Dk, Dv) => {
    const nk = B * H * N * Dk;
    // q, k positive (ELU+1 feature maps); the rotated copies are signed
    const x: Inputs = { q: seeded(nk, 1, 0.1, 2), k: seeded(nk, 2, 0.1, 2), qr: seeded(nk, 3), kr: seeded(nk, 4), v: seeded(B * H * N * Dv, 5) };
    const t = {
      q: tf.tensor4d(x.q, [B, H, N, Dk]),
      k: tf.tensor4d(x.k, [B, H, N, Dk]),
      qr: tf.tensor4d(x.qr, [B, H, N, Dk]),
      kr: tf.tensor4d(x.kr, [B, H, N, Dk]),
      v: tf.tensor4d(x.v, [B, H, N, Dv]),
    };
    const want = byLoops(x, [B * H, N, Dk, Dv], 1e-6);
    const before = tf.memory().numTensors;
    const [fast, ref] = fastAndReference(() => linearAttention(t.q, t.k, t.qr, t.kr, t.v));
    expect(await maxAbsDiff(ref, want)).toBeLessThan(1e-4);
    expect(await maxAbsDiff(fast, want)).toBeLessThan(1e-4);
    tf.dispose([fast, ref]);
    expect(tf.memory().numTensors).toBe(before);
    if (backend === 'webgpu') {
      const w = tf.tensor4d(seeded(B * H * N * Dv, 6), [B, H, N, Dv]);
      const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) =>
        tf.sum(tf.mul(linearAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, d as tf.Tensor4D, e as tf.Tensor4D), w));
      const [gf, gr] = fastAndReference(() => tf.grads(loss)([t.q, t.k, t.qr, t.kr, t.v]));
      for (let i = 0; i < 5; i++) expect(await maxAbsDiff(gf[i]!, gr[i]!), `grad ${i}`).toBeLessThan(1e-4);
      tf.dispose([w, ...gf, ...gr]);
      expect(tf.getKernel('LinearAttention', 'webgpu')).toBeDefined();
    }
    tf.dispose(Object.values(t));
  });

  it('rejects mismatched shapes with a typed error', () => {
    const a = tf.zeros([1, 2, 8, 4]) as tf.Tensor4D;
    const b = tf.zeros([1, 2, 8, 3]) as tf.Tensor4D;
    const c = tf.zeros([1, 2, 7, 4]) as tf.Tensor4D;
    expect(() => linearAttention(a, a, a, b, a)).toThrow(expect.objectContaining({ code: 'shape' }));
    expect(() => linearAttention(a, a, a, a, c)).toThrow(/v must be/);
    tf.dispose([a, b, c]);
  });
});

it('DLA programs: sizes in uniforms, the tile sizes of pass 1 in its key', () => {
  expect(new DlaOutputProgram([1, 1, 5, 3]).getUserCode()).toBe(new DlaOutputProgram([2, 3, 70, 16]).getUserCode());
  const p = new DlaPartialProgram(1, 2, 8, 4, 64);
  const q = new DlaPartialProgram(6, 9, 8, 4, 64);
  expect(p.shaderKey).toBe(q.shaderKey);
  expect(p.getUserCode()).toBe(q.getUserCode());
  expect(new DlaPartialProgram(1, 2, 16, 4, 64).shaderKey).not.toBe(p.shaderKey);
  expect(new DlaPartialProgram(1, 2, 8, 4, 32).shaderKey).not.toBe(p.shaderKey);
});
