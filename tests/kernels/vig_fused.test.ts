/**
 * The fused kernels of the ViG block (linearFused, swigluFused, tokensToHeads, gliMerge, the bias-free depthwise
 * convolution) on cpu, wasm and WebGPU
 * (SwiftShader): forward against a float64 loop written from the definition, on odd shapes; gradients against
 * the reference composite (the kernels' own gradients are VJPs of it) and, independently, a directional finite
 * difference of the float64 loop; on WebGPU each op is one kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it, onTestFinished } from 'vitest';
import { gliMerge } from '../../kernels/gli/op.ts';
import { tokensToHeads } from '../../kernels/heads/op.ts';
import { depthwiseConv2dFused } from '../../kernels/dwconv/op.ts';
import { DepthwiseConv2dFused, GliMerge, LinearFused, SwigluFused, TokensToHeads, type Activation } from '../../kernels/kernel_names.ts';
import { linearFused, packGatedPairs } from '../../kernels/linear/op.ts';
import { matmulTuning } from '../../kernels/matmul/webgpu_program.ts';
import { swigluFused } from '../../kernels/swiglu/op.ts';
import { describeBackends, fastAndReference } from '../_helpers/backends.ts';
import { maxAbsDiff, seeded } from '../_helpers/close.ts';

type Naive = (ins: Float64Array[]) => Float64Array;

const sig = (v: number) => 1 / (1 + Math.exp(-v));
const ACT: Record<string, (v: number) => number> = {
  linear: (v) => v,
  silu: (v) => v * sig(v),
  gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
};

/**
 * Checks op(inputs) against naive, and d/dε Σ w ⊙ op(inputs + ε·dirs) from tf.grads (fast path and reference)
 * against a central difference of naive in float64. `kernel`: the one kernel the op must be on WebGPU.
 */
async function check(backend: string, kernel: string, op: (...xs: tf.Tensor[]) => tf.Tensor, naive: Naive, inputs: tf.Tensor[], tol = 1e-4): Promise<void> {
  const before = tf.memory().numTensors;
  const got = op(...inputs);
  const host = await Promise.all(inputs.map(async (t) => Float64Array.from(await t.data())));
  const want = naive(host);
  expect(got.size).toBe(want.length);
  expect(await maxAbsDiff(got, want)).toBeLessThan(tol);
  got.dispose();
  expect(tf.memory().numTensors).toBe(before);
  if (backend === 'webgpu') {
    const prof = await tf.profile(() => op(...inputs));
    expect(prof.kernelNames).toEqual([kernel]);
    tf.dispose(prof.result as tf.Tensor);
  }
  const w = Float64Array.from(seeded(want.length, 77));
  const wT = tf.tensor(Float32Array.from(w), op(...inputs).shape);
  const dirs = host.map((h, i) => Float64Array.from(seeded(h.length, 100 + i)));
  const loss = (...xs: tf.Tensor[]) => tf.sum(tf.mul(op(...xs), wT));
  const [fast, ref] = fastAndReference(() => tf.grads(loss)(inputs));
  let analytic = 0;
  for (let i = 0; i < inputs.length; i++) {
    expect(fast[i]!.shape).toEqual(inputs[i]!.shape);
    expect(await maxAbsDiff(fast[i]!, ref[i]!), `grad ${i} vs reference`).toBeLessThan(tol * 10);
    const g = await fast[i]!.data();
    for (let j = 0; j < g.length; j++) analytic += g[j]! * dirs[i]![j]!;
  }
  const eps = 1e-5;
  const F = (s: number) => naive(host.map((h, i) => h.map((v, j) => v + s * eps * dirs[i]![j]!))).reduce((acc, v, j) => acc + v * w[j]!, 0);
  const numeric = (F(1) - F(-1)) / (2 * eps);
  expect(Math.abs(analytic - numeric), `directional derivative ${analytic} vs ${numeric}`).toBeLessThan(1e-3 * Math.max(1, Math.abs(numeric)));
  tf.dispose([wT, ...fast, ...ref]);
}

const rand = (shape: number[], seed: number, lo = -1, hi = 1) => tf.tensor(seeded(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);

describeBackends('ViG fused kernels', ['cpu', 'wasm', 'webgpu'], (backend) => {
  // [rows shape, K, N, activation, bias, residual, RMSNorm eps]: tiles crossed and not filled, K not a multiple of
  // 16, the unchecked vec4 path (rows and N multiples of 128, K of 16), the row RMSNorm on both paths (each case
  // compiles its own matmul shader on SwiftShader: few cases, each covering several options)
  // (webgpu: each case on both tile sizes of the matmul program, 128 and 64)
  it.each([
    [[3, 5, 9], 17, 131, 'gelu_tanh', false, true, 1e-3, 128],
    [[3, 5, 9], 17, 131, 'gelu_tanh', false, true, 1e-3, 64],
    [[128], 32, 128, 'silu', true, true, 1e-6, 128],
    [[128], 32, 128, 'silu', true, true, 1e-6, 64],
  ] as [number[], number, number, Activation, boolean, boolean, number, number][])('linearFused rows %j K %i N %i %s bias %s residual %s rmsNorm eps %s tile %i', async (rows, K, N, activation, hasBias, hasResidual, rmsNormEps, tile) => {
    if (backend !== 'webgpu' && tile === 64) return; // the tile is a WebGPU program detail
    const saved = matmulTuning.smallTileBelow;
    matmulTuning.smallTileBelow = tile === 64 ? Infinity : 0;
    onTestFinished(() => void (matmulTuning.smallTileBelow = saved));
    const M = rows.reduce((a, b) => a * b, 1);
    // only the operands in use are inputs (tf.grads refuses an input the output does not depend on)
    const ins = [rand([...rows, K], 1), rand([K, N], 2, -0.5, 0.5), ...(hasBias ? [rand([N], 3)] : []), ...(hasResidual ? [rand([...rows, N], 4)] : [])];
    const op = (x: tf.Tensor, w: tf.Tensor, ...rest: tf.Tensor[]) => linearFused(x, w, { activation, rmsNormEps, ...(hasBias ? { bias: rest[0] } : {}), ...(hasResidual ? { residual: rest[hasBias ? 1 : 0] } : {}) });
    const naive: Naive = ([x, w, ...rest]) => {
      const b = hasBias ? rest[0] : null;
      const r = hasResidual ? rest[hasBias ? 1 : 0] : null;
      const y = new Float64Array(M * N);
      for (let m = 0; m < M; m++) {
        let ss = 0;
        for (let k = 0; k < K; k++) ss += x![m * K + k]! ** 2;
        const scale = rmsNormEps > 0 ? 1 / Math.sqrt(ss / K + rmsNormEps) : 1;
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += x![m * K + k]! * w![k * N + n]!;
          s = s * scale + (hasBias ? b![n]! : 0);
          y[m * N + n] = ACT[activation]!(s) + (hasResidual ? r![m * N + n]! : 0);
        }
      }
      return y;
    };
    await check(backend, LinearFused, op as (...xs: tf.Tensor[]) => tf.Tensor, naive, ins, 1e-4 * Math.sqrt(K));
    tf.dispose(ins);
  });

  // gated: w's tiles of 64 gate and 64 value columns, SiLU(gate)·value written by the matmul (rows cross a tile)
  it('linearFused gated (packGatedPairs weight) with RMSNorm, bias and residual', async () => {
    const [M, K, I] = [129, 20, 128];
    const w = rand([K, 2 * I], 15, -0.5, 0.5);
    const packed = packGatedPairs(w);
    const ins = [rand([3, 43, K], 14), packed, rand([2 * I], 16), rand([3, 43, I], 17)];
    const op = (x: tf.Tensor, pw: tf.Tensor, b: tf.Tensor, r: tf.Tensor) => linearFused(x, pw, { bias: b, residual: r, gated: true, rmsNormEps: 1e-6 });
    // the definition on the unpacked weight: [gate | value] columns of w, the bias packed the same way
    const naive: Naive = ([x, pw, b, r]) => {
      const unpack = (c: number) => Math.floor(c / 64) % 2 === 0 ? 128 * Math.floor(c / 128) / 2 + (c % 64) : I + 128 * Math.floor(c / 128) / 2 + (c % 64);
      const col = new Int32Array(2 * I).map((_, c) => unpack(c)); // packed column → column of w
      const inv = new Int32Array(2 * I);
      col.forEach((orig, c) => (inv[orig] = c));
      const y = new Float64Array(M * I);
      for (let m = 0; m < M; m++) {
        let ss = 0;
        for (let k = 0; k < K; k++) ss += x![m * K + k]! ** 2;
        const scale = 1 / Math.sqrt(ss / K + 1e-6);
        for (let i = 0; i < I; i++) {
          const z = (orig: number) => {
            let s = 0;
            for (let k = 0; k < K; k++) s += x![m * K + k]! * pw![k * 2 * I + inv[orig]!]!;
            return s * scale + b![inv[orig]!]!;
          };
          y[m * I + i] = ACT.silu!(z(i)) * z(I + i) + r![m * I + i]!;
        }
      }
      return y;
    };
    // packing puts column j of the gate half at tile j/64·128 + j%64: checked against the packed weight itself
    const pd = await packed.data();
    const wd = await w.data();
    expect(pd[5 * 2 * I + 64]).toBe(wd[5 * 2 * I + I]); // row 5: first value column of hidden unit 0
    expect(pd[5 * 2 * I + 130]).toBe(wd[5 * 2 * I + 66]); // gate of hidden unit 66
    await check(backend, LinearFused, op as (...xs: tf.Tensor[]) => tf.Tensor, naive, ins, 1e-4 * Math.sqrt(K));
    tf.dispose([w, ...ins]);
  });

  it.each([[[3, 5, 14]], [[2, 8]], [[1, 3, 2]]])('swigluFused %j', async (shape) => {
    const u = rand(shape, 5, -3, 3);
    const I = shape[shape.length - 1]! / 2;
    const naive: Naive = ([x]) => {
      const rows = x!.length / (2 * I);
      const y = new Float64Array(rows * I);
      for (let r = 0; r < rows; r++) for (let i = 0; i < I; i++) y[r * I + i] = ACT.silu!(x![r * 2 * I + i]!) * x![r * 2 * I + I + i]!;
      return y;
    };
    await check(backend, SwigluFused, swigluFused, naive, [u], 1e-5);
    u.dispose();
  });

  // [B, N, P, begin, size, heads, logσ scale]
  it.each([
    [2, 7, 23, 3, 12, 3, 0],
    [1, 9, 40, 20, 10, 1, 16],
    [2, 5, 18, 0, 18, 2, 4],
  ])('tokensToHeads B %i N %i P %i begin %i size %i heads %i logσ/%i', async (B, N, P, begin, size, heads, scale) => {
    const p = rand([B, N, P], 6, -30, 30); // large logits: the stable logσ on both sides
    const D = size / heads;
    const naive: Naive = ([x]) => {
      const y = new Float64Array(B * heads * N * D);
      for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) {
        const v = x![(b * N + n) * P + begin + h * D + d]!;
        y[((b * heads + h) * N + n) * D + d] = scale > 0 ? -Math.log1p(Math.exp(-v)) / scale : v;
      }
      return y;
    };
    await check(backend, TokensToHeads, (x) => tokensToHeads(x as tf.Tensor3D, { begin, size, heads, logSigmoidScale: scale }), naive, [p], 1e-4);
    p.dispose();
  });

  // [B, h, N, dv, G, gateOffset, activation]: dv under and over the 64-invocation workgroup
  it.each([
    [2, 3, 5, 4, 15, 2, 'silu'],
    [1, 2, 3, 70, 150, 10, 'linear'],
  ] as [number, number, number, number, number, number, 'silu' | 'linear'][])('gliMerge B %i h %i N %i dv %i G %i offset %i %s', async (B, h, N, dv, G, offset, activation) => {
    const C = h * dv;
    const ins = [rand([B, h, N, dv], 7, -2, 2), rand([B, N, C], 8, -2, 2), rand([B, N, G], 9, -3, 3), rand([dv], 10, 0.5, 1.5), rand([dv], 11, 0.5, 1.5)];
    const eps = 1e-6;
    const naive: Naive = ([o, l, g, go, gl]) => {
      const y = new Float64Array(B * N * C);
      for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) for (let hh = 0; hh < h; hh++) {
        let so = 0;
        let sl = 0;
        for (let c = 0; c < dv; c++) {
          so += o![((b * h + hh) * N + n) * dv + c]! ** 2;
          sl += l![(b * N + n) * C + hh * dv + c]! ** 2;
        }
        const ro = 1 / Math.sqrt(so / dv + eps);
        const rl = 1 / Math.sqrt(sl / dv + eps);
        for (let c = 0; c < dv; c++) {
          const s = sig(g![(b * N + n) * G + offset + hh * dv + c]!);
          const m = s * o![((b * h + hh) * N + n) * dv + c]! * ro * go![c]! + (1 - s) * l![(b * N + n) * C + hh * dv + c]! * rl * gl![c]!;
          y[(b * N + n) * C + hh * dv + c] = ACT[activation]!(m);
        }
      }
      return y;
    };
    const op = (o: tf.Tensor, l: tf.Tensor, g: tf.Tensor, go: tf.Tensor, gl: tf.Tensor) => gliMerge(o as tf.Tensor4D, l as tf.Tensor3D, g as tf.Tensor3D, go as tf.Tensor1D, gl as tf.Tensor1D, { gateOffset: offset, eps, activation });
    await check(backend, GliMerge, op as (...xs: tf.Tensor[]) => tf.Tensor, naive, ins, 1e-4);
    tf.dispose(ins);
  });

  // ViG's locality injection: no bias, no gate (absent inputs are left out of the kernel call outside a tape)
  it('depthwiseConv2dFused 3x3 SiLU without bias or gate', async () => {
    const [N, H, W, C] = [2, 5, 7, 6];
    const ins = [rand([N, H, W, C], 12, -2, 2), rand([3, 3, C, 1], 13)];
    const naive: Naive = ([x, f]) => {
      const y = new Float64Array(N * H * W * C);
      for (let n = 0; n < N; n++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) for (let c = 0; c < C; c++) {
        let s = 0;
        for (let di = -1; di <= 1; di++) for (let dj = -1; dj <= 1; dj++) {
          const [ii, jj] = [i + di, j + dj];
          if (ii >= 0 && ii < H && jj >= 0 && jj < W) s += x![((n * H + ii) * W + jj) * C + c]! * f![((di + 1) * 3 + dj + 1) * C + c]!;
        }
        y[((n * H + i) * W + j) * C + c] = ACT.silu!(s);
      }
      return y;
    };
    await check(backend, DepthwiseConv2dFused, (x, f) => depthwiseConv2dFused(x as tf.Tensor4D, f as tf.Tensor4D, { activation: 'silu' }), naive, ins, 1e-5);
    tf.dispose(ins);
  });

  it('shape errors name what was wrong', () => {
    const x = tf.zeros([2, 3, 4]) as tf.Tensor3D;
    expect(() => linearFused(x, tf.zeros([5, 2]))).toThrow(/same K/);
    expect(() => linearFused(x, tf.zeros([4, 2]), { bias: tf.zeros([3]) })).toThrow(/bias must be \[2\]/);
    expect(() => swigluFused(tf.zeros([2, 3]))).toThrow(/must be even/);
    expect(() => tokensToHeads(x, { begin: 2, size: 4, heads: 2 })).toThrow(/not inside/);
    expect(() => tokensToHeads(x, { begin: 0, size: 3, heads: 2 })).toThrow(/do not split/);
    expect(() => gliMerge(tf.zeros([2, 1, 3, 4]) as tf.Tensor4D, x, tf.zeros([2, 3, 4]) as tf.Tensor3D, tf.ones([4]) as tf.Tensor1D, tf.ones([4]) as tf.Tensor1D, { gateOffset: 1, eps: 1e-6 })).toThrow(/columns \[1, 5\)/);
  });
});
