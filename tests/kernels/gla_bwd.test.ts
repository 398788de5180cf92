/**
 * The BiGLA backward kernel on SwiftShader: its five gradients equal the VJP of the tfjs-ops chunked form (the
 * gradient it replaces) on odd shapes (lengths not a multiple of the chunk, one head, batch > 1, both chunk sizes,
 * ViG's head) with log-decays down to −20, and equal the adjoint of the naive per-token recurrence (numpy,
 * float64); shapes it cannot take keep the VJP; a tiny ViG trains with the same losses as on cpu; its shader keys
 * carry every baked size. The same programs for one direction give GatedLinearAttention's gradient.
 * Tolerances (float32 against float32 or float64, gradients of order 1): 1e-4 absolute on every gradient; 1e-4
 * relative on the training losses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../backbones/_registry.ts';
import { selectDevice } from '../../kernels/backend.ts';
import type { WebGPUBackend, WebGPUProgram } from '../../kernels/_webgpu_internal.ts';
import { glaBiGradChunkSize, glaBiGradKernel, glaBiGradTuning } from '../../kernels/gla/backward.ts';
import { BiGatedLinearAttentionGrad, GatedLinearAttentionGrad } from '../../kernels/gla/names.ts';
import { biGatedLinearAttention, gatedLinearAttention } from '../../kernels/gla/op.ts';
import { GlaBiGradChunkProgram } from '../../kernels/gla/webgpu_bi_grad_chunk.ts';
import { GlaGateGradProgram, GlaGateTotalsProgram } from '../../kernels/gla/webgpu_bi_grad_gates.ts';
import { GlaBiGradStateProgram } from '../../kernels/gla/webgpu_bi_grad_state.ts';
import { maxAbsDiff, seeded } from '../_helpers/close.ts';
import { pythonJson } from '../_helpers/python.ts';

type Shape = [number, number, number, number, number];
const TOL = 1e-4;

function inputs([B, H, T, Dk, Dv]: Shape, seed: number, steep: number) {
  const n = B * H * T * Dk;
  // log-sigmoid(z)/16 as ViG makes them; a third of the entries pushed down to −steep (|log α| up to steep)
  const gate = (s: number) => Array.from(seeded(n, s, -8, 3), (z, i) => -Math.log1p(Math.exp(-z)) / 16 - (z < -4.5 ? steep * ((i % 7) + 1) / 7 : 0));
  return {
    q: tf.tensor4d(seeded(n, seed), [B, H, T, Dk]),
    k: tf.tensor4d(seeded(n, seed + 1), [B, H, T, Dk]),
    v: tf.tensor4d(seeded(B * H * T * Dv, seed + 2), [B, H, T, Dv]),
    gf: tf.tensor4d(gate(seed + 3), [B, H, T, Dk]),
    gb: tf.tensor4d(gate(seed + 4), [B, H, T, Dk]),
    dy: tf.tensor4d(seeded(B * H * T * Dv, seed + 5), [B, H, T, Dv]),
  };
}
type In = ReturnType<typeof inputs>;

/** Gradients of Σ dy ⊙ BiGLA(q, k, v, gf, gb) with the backward chunk capped at `chunk` (0: the VJP). */
function grads(x: In, chunk: number): tf.Tensor[] {
  glaBiGradTuning.maxChunk = chunk;
  try {
    const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, gf: tf.Tensor, gb: tf.Tensor) => tf.sum(tf.mul(biGatedLinearAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, gf as tf.Tensor4D, gb as tf.Tensor4D), x.dy));
    return tf.grads(f)([x.q, x.k, x.v, x.gf, x.gb]);
  } finally {
    glaBiGradTuning.maxChunk = 32;
  }
}

/** Names of the programs `f` dispatches. */
async function programsOf<T>(f: () => T): Promise<{ result: T; programs: string[] }> {
  const b = tf.backend() as unknown as WebGPUBackend;
  const run = b.runWebGPUProgram.bind(b);
  const programs: string[] = [];
  b.runWebGPUProgram = ((p: WebGPUProgram, ...rest: unknown[]) => {
    programs.push(p.constructor.name);
    return (run as (...a: unknown[]) => ReturnType<typeof run>)(p, ...rest);
  }) as typeof b.runWebGPUProgram;
  try {
    return { result: f(), programs };
  } finally {
    b.runWebGPUProgram = run;
  }
}

const NAMES = ['dq', 'dk', 'dv', 'dLogDecayFwd', 'dLogDecayBwd'];

// backpropagation through time of S_t = diag(α_t) S_{t−1} + k_tᵀ v_t, o_t = s·q_t S_t, per direction
const ADJOINT = `
import json, sys, numpy as np
c = json.loads(sys.stdin.read())
B, H, T, Dk, Dv = c['shape']
s = c['scale']
q, k, gf, gb = (np.array(c[n], np.float64).reshape(B, H, T, Dk) for n in ('q', 'k', 'gf', 'gb'))
v, dy = (np.array(c[n], np.float64).reshape(B, H, T, Dv) for n in ('v', 'dy'))
def scan_grad(q, k, v, g, do):
    dq, dk, dv, dg = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v), np.zeros_like(g)
    for b in range(B):
        for h in range(H):
            S = np.zeros((T + 1, Dk, Dv))
            for t in range(T):
                S[t + 1] = np.exp(g[b, h, t])[:, None] * S[t] + np.outer(k[b, h, t], v[b, h, t])
            dS = np.zeros((Dk, Dv))
            for t in range(T - 1, -1, -1):
                dS = dS + s * np.outer(q[b, h, t], do[b, h, t])
                dq[b, h, t] = s * S[t + 1] @ do[b, h, t]
                dk[b, h, t] = dS @ v[b, h, t]
                dv[b, h, t] = dS.T @ k[b, h, t]
                a = np.exp(g[b, h, t])
                dg[b, h, t] = a * (dS * S[t]).sum(1)
                dS = a[:, None] * dS
    return dq, dk, dv, dg
f = scan_grad(q, k, v, gf, dy)
r = [x[:, :, ::-1] for x in scan_grad(*(x[:, :, ::-1] for x in (q, k, v, gb, dy)))]
print(json.dumps([x.ravel().tolist() for x in (f[0] + r[0], f[1] + r[1], f[2] + r[2], f[3], r[3])]))
`;

describe('BiGLA backward kernel (SwiftShader)', () => {
  beforeAll(async () => {
    await selectDevice('webgpu', { allowSoftware: true });
  });
  afterAll(async () => {
    glaBiGradTuning.maxChunk = 32;
    await selectDevice('cpu');
  });

  it('gradients through tf.grads equal the VJP of the chunked form (batch 2, one head, T = 37 over two 32-token chunks)', async () => {
    const x = inputs([2, 1, 37, 8, 12], 31, 4);
    const before = tf.memory().numTensors;
    const { result: fast, programs } = await programsOf(() => grads(x, 32));
    expect(programs.filter((p) => p === 'GlaBiGradChunkProgram')).toHaveLength(1);
    const { result: slow, programs: vjpPrograms } = await programsOf(() => grads(x, 0));
    expect(vjpPrograms).not.toContain('GlaBiGradChunkProgram');
    for (let i = 0; i < 5; i++) {
      const f = await fast[i]!.data();
      expect(await maxAbsDiff(fast[i]!, slow[i]!), NAMES[i]).toBeLessThan(TOL);
      // gradients of order 1: the check above would catch a missing term
      expect(Array.from(f).reduce((m, a) => Math.max(m, Math.abs(a)), 0), NAMES[i]).toBeGreaterThan(0.1);
    }
    tf.dispose([...fast, ...slow]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(x));
  });

  // [shape, largest chunk, steepest log-decay]: one head, T = 100 in 16-token chunks (the backward scan starts in
  // padding) with decays to −20; two heads over two 32-token chunks (d_v 64: two token rows per invocation share
  // their loads of R in dv); ViG's head (d_k 32, d_v 64: 16-token chunks
  // in SwiftShader's 32 KiB of workgroup memory), batch 2. The kernel is called directly: no forward to compile.
  it.each([
    [[1, 1, 100, 8, 12], 16, 20],
    [[1, 2, 45, 8, 64], 32, 20],
    [[2, 1, 40, 32, 64], 16, 8],
  ] as [Shape, number, number][])('gradients equal the adjoint of the naive recurrence (numpy, float64): %j, chunk ≤ %i, log-decay ≥ −%i', async (shape, chunk, steep) => {
    const x = inputs(shape, 7 + shape[2], steep);
    const scale = shape[3] ** -0.5 / 2;
    glaBiGradTuning.maxChunk = chunk;
    const buffers = tf.engine().backend.numDataIds();
    const { result: fast, programs } = await programsOf(() => glaBiGradKernel(x.q, x.k, x.v, x.gf, x.gb, x.dy, scale));
    glaBiGradTuning.maxChunk = 32;
    expect(programs.filter((p) => p === 'GlaBiGradChunkProgram')).toHaveLength(1);
    const arr = async (t: tf.Tensor) => Array.from(await t.data());
    const want = pythonJson<number[][]>(ADJOINT, [], {
      input: JSON.stringify({ shape, scale, q: await arr(x.q), k: await arr(x.k), v: await arr(x.v), gf: await arr(x.gf), gb: await arr(x.gb), dy: await arr(x.dy) }),
    });
    for (let i = 0; i < 5; i++) {
      const f = await fast[i]!.data();
      expect(f.every(Number.isFinite), NAMES[i]).toBe(true);
      expect(await maxAbsDiff(f, want[i]!), NAMES[i]).toBeLessThan(TOL);
    }
    tf.dispose(fast);
    expect(tf.engine().backend.numDataIds()).toBe(buffers); // every intermediate buffer freed
    tf.dispose(Object.values(x));
  });

  it.each([false, true])('single-direction GLA (reverse %s): gradients through the one-direction kernel equal the VJP', async (reverse) => {
    const x = inputs([2, 1, 37, 8, 12], 41, 20);
    const f = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(gatedLinearAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, g as tf.Tensor4D, { reverse }), x.dy));
    const { result: fast, programs } = await programsOf(() => tf.grads(f)([x.q, x.k, x.v, x.gf]));
    expect(programs.filter((p) => p === 'GlaBiGradChunkProgram')).toHaveLength(1);
    glaBiGradTuning.maxChunk = 0;
    const slow = tf.grads(f)([x.q, x.k, x.v, x.gf]);
    glaBiGradTuning.maxChunk = 32;
    for (let i = 0; i < 4; i++) {
      const name = ['dq', 'dk', 'dv', 'dLogDecay'][i];
      expect(await maxAbsDiff(fast[i]!, slow[i]!), name).toBeLessThan(TOL);
      expect(Array.from(await slow[i]!.data()).reduce((m, a) => Math.max(m, Math.abs(a)), 0), name).toBeGreaterThan(0.05);
    }
    expect(tf.getKernel(GatedLinearAttentionGrad, 'webgpu')).toBeDefined();
    tf.dispose([...fast, ...slow, ...Object.values(x)]);
  });

  it('keeps the VJP where the kernel cannot run (d_v not a multiple of 4), with the same gradients', async () => {
    const x = inputs([1, 1, 20, 8, 6], 3, 4);
    const { result: g, programs } = await programsOf(() => grads(x, 32));
    expect(programs).not.toContain('GlaBiGradChunkProgram');
    const ref = grads(x, 0);
    for (let i = 0; i < 5; i++) expect(await maxAbsDiff(g[i]!, ref[i]!)).toBe(0);
    expect(tf.getKernel(BiGatedLinearAttentionGrad, 'webgpu')).toBeDefined();
    tf.dispose([...g, ...ref, ...Object.values(x)]);
  });

  it('a tiny ViG trains with the same losses as on cpu (3 SGD steps), through the kernel', async () => {
    const curve = async (device: 'cpu' | 'webgpu') => {
      await selectDevice(device, { allowSoftware: true });
      const model = createBackbone('test_vig', { seed: 3 });
      const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
      const labels = tf.oneHot(tf.tensor1d([0, 3], 'int32'), 10);
      const opt = tf.train.sgd(0.1);
      const losses: number[] = [];
      const step = () => opt.minimize(() => tf.losses.softmaxCrossEntropy(labels, model.forward(x) as tf.Tensor2D) as tf.Scalar, true, model.params.variables())!;
      let programs: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { result: l, programs: p } = device === 'webgpu' ? await programsOf(step) : { result: step(), programs: [] };
        programs = programs.concat(p);
        losses.push((await l.data())[0]!);
        l.dispose();
      }
      tf.dispose([x, labels]);
      model.dispose();
      return { losses, programs };
    };
    const cpu = await curve('cpu');
    const gpu = await curve('webgpu');
    expect(gpu.programs.filter((p) => p === 'GlaBiGradChunkProgram').length).toBe(3 * 2); // 2 blocks, 3 steps
    expect(cpu.losses[2]!).toBeLessThan(cpu.losses[0]! * 0.8); // the steps do move the loss
    for (let i = 0; i < 3; i++) expect(Math.abs(gpu.losses[i]! - cpu.losses[i]!), `step ${i}`).toBeLessThan(1e-4 * cpu.losses[i]!);
    await selectDevice('webgpu', { allowSoftware: true });
  });

  it('bakes d_k, d_v and the chunk, names them in its keys, and keeps T and the head count out', () => {
    expect(glaBiGradChunkSize(8, 12, 32768, 256)).toBe(32);
    expect(glaBiGradChunkSize(32, 64, 32768, 256)).toBe(16); // ViG's head in SwiftShader's 32 KiB
    expect(glaBiGradChunkSize(32, 64, 49152, 256)).toBe(32);
    expect(glaBiGradChunkSize(8, 6, 32768, 256)).toBe(0);
    expect(glaBiGradChunkSize(8, 12, 32768, 128)).toBe(0); // the chunk pass runs 256 invocations
    expect(glaBiGradChunkSize(128, 128, 32768, 256)).toBe(0);
    const progs = (dk: number, dv: number, c: number, T: number, BH: number) => {
      const nC = Math.ceil(T / c);
      return [new GlaBiGradStateProgram(BH, nC, dk, dv, c), new GlaBiGradChunkProgram(BH, T, nC, dk, dv, c), new GlaGateTotalsProgram(BH, nC, dk, dv, c), new GlaGateGradProgram(BH, T, dk, dv, c)];
    };
    const [a, b, c, d, e] = [progs(8, 12, 32, 150, 2), progs(8, 12, 32, 9000, 5), progs(16, 12, 32, 150, 2), progs(8, 16, 32, 150, 2), progs(8, 12, 16, 150, 2)];
    const one = (dirs: 'fwd' | 'bwd') => [new GlaBiGradStateProgram(2, 5, 8, 12, 32, dirs), new GlaBiGradChunkProgram(2, 150, 5, 8, 12, 32, dirs), new GlaGateTotalsProgram(2, 5, 8, 12, 32, dirs), new GlaGateGradProgram(2, 150, 8, 12, 32, dirs)];
    for (let i = 0; i < a.length; i++) {
      expect(a[i]!.shaderKey).toBe(b[i]!.shaderKey);
      expect(a[i]!.getUserCode()).toBe(b[i]!.getUserCode());
      for (const other of [c, d, e, one('fwd'), one('bwd')]) {
        expect(other[i]!.shaderKey).not.toBe(a[i]!.shaderKey);
        expect(other[i]!.getUserCode()).not.toBe(a[i]!.getUserCode());
      }
    }
  });
});
