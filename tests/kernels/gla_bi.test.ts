/**
 * The fused bidirectional GLA kernel (one pass over q, k, v for both scans) on SwiftShader: equal to the
 * tfjs-ops reference and to the split two-scan kernel, forward and gradients, on odd shapes (lengths not a
 * multiple of the chunk, one head, batch > 1, every chunk size), with strong decays; its shader keys carry
 * every baked size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import type { WebGPUBackend, WebGPUProgram } from '../../kernels/_webgpu_internal.ts';
import { setForceReference, setGlaBidirectionalMode } from '../../kernels/flags.ts';
import { biGatedLinearAttention } from '../../kernels/gla/op.ts';
import { BiGatedLinearAttention } from '../../kernels/gla/names.ts';
import { glaVectorized } from '../../kernels/gla/vectorized.ts';
import { glaTuning } from '../../kernels/gla/webgpu.ts';
import { glaBiChunkSize } from '../../kernels/gla/webgpu_bi.ts';
import { GlaBiOutputProgram } from '../../kernels/gla/webgpu_bi_output.ts';
import { GlaBiStateProgram } from '../../kernels/gla/webgpu_bi_state.ts';
import { maxAbsDiff, seeded } from '../_helpers/close.ts';

type Shape = [number, number, number, number, number];

function inputs([B, H, T, Dk, Dv]: Shape, seed: number, strong = 4) {
  const n = B * H * T * Dk;
  // log-sigmoid(z)/16 as ViG makes them, with strong decays mixed into a few channels
  const gate = (s: number, extra: number) => Array.from(seeded(n, s, -8, 3), (z) => -Math.log1p(Math.exp(-z)) / 16 - (z < -6 ? extra : 0));
  return {
    q: tf.tensor4d(seeded(n, seed), [B, H, T, Dk]),
    k: tf.tensor4d(seeded(n, seed + 1), [B, H, T, Dk]),
    v: tf.tensor4d(seeded(B * H * T * Dv, seed + 2), [B, H, T, Dv]),
    gf: tf.tensor4d(gate(seed + 3, strong), [B, H, T, Dk]),
    gb: tf.tensor4d(gate(seed + 4, strong), [B, H, T, Dk]),
  };
}

type In = ReturnType<typeof inputs>;
const bi = (x: In) => biGatedLinearAttention(x.q, x.k, x.v, x.gf, x.gb);

function reference<T>(f: () => T): T {
  setForceReference(true);
  try {
    return f();
  } finally {
    setForceReference(false);
  }
}

/** Names of the programs one call dispatches. */
function programsOf(f: () => tf.Tensor): string[] {
  const b = tf.backend() as unknown as WebGPUBackend;
  const run = b.runWebGPUProgram.bind(b);
  const seen: string[] = [];
  b.runWebGPUProgram = ((p: WebGPUProgram, ...rest: unknown[]) => {
    seen.push(p.constructor.name);
    return (run as (...a: unknown[]) => ReturnType<typeof run>)(p, ...rest);
  }) as typeof b.runWebGPUProgram;
  try {
    tf.dispose(f());
  } finally {
    b.runWebGPUProgram = run;
  }
  return seen;
}

describe('fused BiGLA WebGPU kernel (SwiftShader)', () => {
  beforeAll(async () => {
    await selectDevice('webgpu', { allowSoftware: true });
  });
  afterAll(() => {
    setForceReference(false);
    setGlaBidirectionalMode('fused');
    glaTuning.maxChunk = 64;
    glaTuning.biMaxChunk = 32;
  });

  // [shape, largest chunk]: one head shorter than a chunk; batch > 1 over three chunks, the last partial (the
  // backward scan starts in padding); ViG's head (d_k 32, d_v 64); 32- and 16-token chunks (2 and 1 sub-chunks).
  // d_k and d_v repeat where they can: SwiftShader compiles each shader variant for seconds.
  const CASES: [Shape, number][] = [
    [[1, 1, 5, 8, 12], 64],
    [[2, 1, 150, 8, 12], 64],
    [[1, 1, 130, 32, 64], 64],
    [[2, 1, 45, 8, 12], 32],
    [[1, 2, 21, 8, 12], 16],
  ];

  it.each(CASES)('forward equals the reference: %j, chunk ≤ %i', async (shape, chunk) => {
    glaTuning.maxChunk = chunk;
    glaTuning.biMaxChunk = chunk;
    const x = inputs(shape, 17 + shape[2]);
    const before = tf.memory().numTensors;
    expect(programsOf(() => bi(x))).toContain('GlaBiOutputProgram');
    const fast = bi(x);
    // the loop-free chunked form, checked against the per-token recurrence in gla.test.ts, is the quick oracle here
    const slow = tf.tidy(() => {
      const s = shape[3] ** -0.5 / 2;
      const zero = tf.zeros([shape[0], shape[1], shape[2], shape[4]]) as tf.Tensor4D;
      return glaVectorized(x.q, x.k, x.v, x.gb, glaVectorized(x.q, x.k, x.v, x.gf, zero, false, s), true, s);
    });
    expect(await maxAbsDiff(fast, slow)).toBeLessThan(1e-4);
    tf.dispose([fast, slow]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(x));
    glaTuning.maxChunk = 64;
    glaTuning.biMaxChunk = 32;
  });

  it('gradients through the fused kernel equal those through the reference (all five inputs)', async () => {
    const shape: Shape = [2, 1, 37, 8, 12];
    const x = inputs(shape, 23);
    const w = tf.randomNormal([shape[0], shape[1], shape[2], shape[4]], 0, 1, 'float32', 3);
    const loss = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, gf: tf.Tensor, gb: tf.Tensor) =>
      tf.sum(tf.mul(biGatedLinearAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, gf as tf.Tensor4D, gb as tf.Tensor4D), w));
    const args = [x.q, x.k, x.v, x.gf, x.gb];
    const gFast = tf.grads(loss)(args);
    const gSlow = reference(() => tf.grads(loss)(args));
    for (let i = 0; i < 5; i++) expect(await maxAbsDiff(gFast[i]!, gSlow[i]!), `grad ${i}`).toBeLessThan(1e-3);
    tf.dispose([...gFast, ...gSlow, w, ...Object.values(x)]);
  });

  it('equals the split two-scan kernel; very strong decays stay finite; d_v not a multiple of 4 falls back to it', async () => {
    for (const [shape, strong] of [[[1, 2, 100, 8, 12], 60], [[2, 1, 40, 8, 5], 4]] as [Shape, number][]) {
      const x = inputs(shape, 5, strong);
      const fused = bi(x);
      setGlaBidirectionalMode('split');
      const programs = programsOf(() => bi(x));
      const split = bi(x);
      setGlaBidirectionalMode('fused');
      expect(programs).not.toContain('GlaBiOutputProgram');
      const slow = reference(() => bi(x));
      const f = await fused.data();
      expect(f.every(Number.isFinite)).toBe(true);
      expect(await maxAbsDiff(fused, split)).toBeLessThan(1e-4);
      expect(await maxAbsDiff(fused, slow)).toBeLessThan(1e-4);
      if (shape[4] % 4 !== 0) expect(programsOf(() => bi(x))).not.toContain('GlaBiOutputProgram');
      tf.dispose([fused, split, slow, ...Object.values(x)]);
    }
    expect(tf.getKernel(BiGatedLinearAttention, 'webgpu')).toBeDefined();
  });

  it('bakes d_k, d_v and the chunk, names them in its keys, and keeps T and the head count out', () => {
    expect(glaBiChunkSize(32, 64, 32768, 256)).toBe(64); // ViG's head fits SwiftShader's 32 KiB
    expect(glaBiChunkSize(16, 64, 32768, 256)).toBe(64);
    expect(glaBiChunkSize(64, 64, 32768, 256)).toBe(16);
    expect(glaBiChunkSize(32, 64, 16384, 256)).toBe(16);
    expect(glaBiChunkSize(8, 5, 32768, 256)).toBe(0);
    expect(glaBiChunkSize(32, 128, 65536, 256)).toBe(32); // 512 invocations at 64 tokens: over the limit
    const progs = (dk: number, dv: number, c: number, T: number, BH: number) => [
      new GlaBiStateProgram(BH, Math.ceil(T / c), dk, dv, c),
      new GlaBiOutputProgram([1, BH, T, dv], Math.ceil(T / c), dk, dv, c),
    ];
    const [a, b, c, d, e] = [progs(8, 12, 64, 150, 2), progs(8, 12, 64, 9000, 5), progs(16, 12, 64, 150, 2), progs(8, 16, 64, 150, 2), progs(8, 12, 32, 150, 2)];
    for (let i = 0; i < 2; i++) {
      expect(a[i]!.shaderKey).toBe(b[i]!.shaderKey);
      expect(a[i]!.getUserCode()).toBe(b[i]!.getUserCode());
      for (const other of [c, d, e]) expect(other[i]!.shaderKey).not.toBe(a[i]!.shaderKey);
    }
  });
});
