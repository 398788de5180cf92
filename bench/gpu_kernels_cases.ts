/**
 * The shapes bench/gpu_kernels.ts measures (and bench/pytorch/kernels.py measures the same way), each with
 * our op and its reference composite. Full sizes are the issue's: ViG's 256² locality injection, BiGLA at
 * N = 65536, HER-Seg-style linear attention at the same length, MAXIM level-0 blocks, a 4096³ matmul.
 */
import * as tf from '@tensorflow/tfjs-core';
import { depthwiseConv2dFused } from '../kernels/dwconv/op.ts';
import { biGatedLinearAttention } from '../kernels/gla/op.ts';
import { glaTuning } from '../kernels/gla/webgpu.ts';
import { glaBiGradKernel, glaBiGradKernelChunk, glaBiGradTuning } from '../kernels/gla/backward.ts';
import { glaBiGradVjp } from '../kernels/gla/grad.ts';
import { glaBidirectionalMode, setGlaBidirectionalMode } from '../kernels/flags.ts';
import { linearAttention } from '../kernels/linear_attention/op.ts';
import { matmulFast } from '../kernels/matmul/op.ts';
import { blockPartition } from '../kernels/multi_axis/op.ts';

type Inputs = Record<string, tf.Tensor>;

export interface BenchImpl {
  name: string;
  /** true: run with the references forced (the stock tfjs composite). */
  reference: boolean;
  run: (x: Inputs) => tf.Tensor;
  repeat?: number;
  inner?: number;
  /** The time is of a part of the work (e.g. a slice): multiply by this. */
  timeScale?: number;
}

export interface BenchCase {
  op: string;
  shape: string;
  flops: number;
  make: () => Inputs;
  impls: BenchImpl[];
}

const n4 = (s: [number, number, number, number]) => tf.randomNormal(s) as tf.Tensor4D;
const ours = (run: (x: Inputs) => tf.Tensor): BenchImpl => ({ name: 'ours (WGSL kernel)', reference: false, run });
const stock = (run: (x: Inputs) => tf.Tensor, extra: Partial<BenchImpl> = {}): BenchImpl => ({ name: 'tfjs-webgpu composite (reference ops)', reference: true, run, ...extra });

function withChunk(c: number, f: () => tf.Tensor): tf.Tensor {
  const before = { ...glaTuning };
  glaTuning.maxChunk = c;
  glaTuning.biMaxChunk = c;
  try {
    return f();
  } finally {
    Object.assign(glaTuning, before);
  }
}

/** One gradient of the five stands for the call: the others are freed as soon as they are queued. */
function firstOf(gs: tf.Tensor[]): tf.Tensor {
  tf.dispose(gs.slice(1));
  return gs[0]!;
}

function withGradChunk(c: number, f: () => tf.Tensor): tf.Tensor {
  const before = glaBiGradTuning.maxChunk;
  glaBiGradTuning.maxChunk = c;
  try {
    return f();
  } finally {
    glaBiGradTuning.maxChunk = before;
  }
}

function withGlaMode(mode: 'fused' | 'split', f: () => tf.Tensor): tf.Tensor {
  const before = glaBidirectionalMode();
  setGlaBidirectionalMode(mode);
  try {
    return f();
  } finally {
    setGlaBidirectionalMode(before);
  }
}

/**
 * Agreement beside the timings, on the benchmark's own inputs and device: the fused BiGLA kernel against the
 * split one (max |fused − split| and max |split|), so a device run also shows the new kernel's result is right.
 */
export async function glaAgreement(small: boolean): Promise<{ op: string; shape: string; maxAbsDiff: number; maxAbs: number }> {
  const [B, H, N, Dk, Dv] = small ? [1, 1, 200, 32, 64] : [1, 3, 65536, 32, 64];
  const x = {
    q: tf.randomNormal([B, H, N, Dk]) as tf.Tensor4D,
    k: tf.randomNormal([B, H, N, Dk]) as tf.Tensor4D,
    v: tf.randomNormal([B, H, N, Dv]) as tf.Tensor4D,
    gf: tf.neg(tf.randomUniform([B, H, N, Dk], 0, 0.1)) as tf.Tensor4D,
    gb: tf.neg(tf.randomUniform([B, H, N, Dk], 0, 0.1)) as tf.Tensor4D,
  };
  const fused = withGlaMode('fused', () => biGatedLinearAttention(x.q, x.k, x.v, x.gf, x.gb));
  const split = withGlaMode('split', () => biGatedLinearAttention(x.q, x.k, x.v, x.gf, x.gb));
  const [d, m] = tf.tidy(() => [tf.max(tf.abs(tf.sub(fused, split))), tf.max(tf.abs(split))]);
  const [maxAbsDiff, maxAbs] = [(await d!.data())[0]!, (await m!.data())[0]!];
  tf.dispose([fused, split, d!, m!, ...Object.values(x)]);
  return { op: 'BiGLA forward, fused vs split', shape: `B${B} H${H} N${N} dk${Dk} dv${Dv}`, maxAbsDiff, maxAbs };
}

export function benchCases(small: boolean): BenchCase[] {
  const [H, W, C] = small ? [16, 16, 8] : [256, 256, 192];
  const [B, Hh, N, Dk, Dv] = small ? [1, 1, 200, 32, 64] : [1, 3, 65536, 32, 64];
  const [Na, Da] = small ? [100, 16] : [65536, 64];
  const [Hm, Cm, f] = small ? [16, 8, 4] : [256, 128, 8];
  const n = small ? 64 : 4096;
  const slice = small ? N : 4096; // the composite GLA loops over chunks from JS: time a slice, scale by N/slice
  // q, k, v and both directions' log-decays (gates in (0.9, 1]) of the BiGLA rows; the backward rows add dy
  const glaInputs = (withDy: boolean): Inputs => ({
    q: n4([B, Hh, N, Dk]),
    k: n4([B, Hh, N, Dk]),
    v: n4([B, Hh, N, Dv]),
    gf: tf.neg(tf.randomUniform([B, Hh, N, Dk], 0, 0.1)),
    gb: tf.neg(tf.randomUniform([B, Hh, N, Dk], 0, 0.1)),
    ...(withDy ? { dy: n4([B, Hh, N, Dv]) } : {}),
  });
  const gla = (x: Inputs) => biGatedLinearAttention(x.q as tf.Tensor4D, x.k as tf.Tensor4D, x.v as tf.Tensor4D, x.gf as tf.Tensor4D, x.gb as tf.Tensor4D);
  const glaSlice = (x: Inputs) =>
    tf.tidy(() => {
      const s = (t: tf.Tensor) => tf.slice(t, [0, 0, 0, 0], [B, Hh, slice, t.shape[3]!]) as tf.Tensor4D;
      return biGatedLinearAttention(s(x.q!), s(x.k!), s(x.v!), s(x.gf!), s(x.gb!));
    });
  // the backward alone, given dy: the kernel (BiGatedLinearAttentionGrad) or the VJP of the tfjs-ops chunked form
  const sc = Dk ** -0.5 / 2;
  const glaArgs = (x: Inputs) => [x.q, x.k, x.v, x.gf, x.gb, x.dy] as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const glaBwd = (x: Inputs) => firstOf((glaBiGradKernelChunk(Dk, Dv) > 0 ? glaBiGradKernel : glaBiGradVjp)(...glaArgs(x), sc));
  const glaBwdVjp = (x: Inputs) => firstOf(glaBiGradVjp(...glaArgs(x), sc));
  const dla = (x: Inputs) => linearAttention(x.q as tf.Tensor4D, x.k as tf.Tensor4D, x.qr as tf.Tensor4D, x.kr as tf.Tensor4D, x.v as tf.Tensor4D);
  const dw = (x: Inputs) => depthwiseConv2dFused(x.x as tf.Tensor4D, x.w as tf.Tensor4D, { bias: x.b as tf.Tensor1D });
  return [
    {
      op: 'depthwise3x3+bias',
      shape: `1x${H}x${W}x${C}`,
      flops: 2 * 9 * H * W * C,
      make: () => ({ x: n4([1, H, W, C]), w: n4([3, 3, C, 1]), b: tf.randomNormal([C]) }),
      impls: [ours(dw), { name: 'ours, one call awaited at a time', reference: false, run: dw, inner: 1 }, stock(dw)],
    },
    {
      op: 'BiGLA forward',
      shape: `B${B} H${Hh} N${N} dk${Dk} dv${Dv}`,
      flops: 2 * 2 * 3 * B * Hh * N * Dk * Dv, // state update + readout, both directions
      make: () => glaInputs(false),
      impls: [
        ours(gla),
        { name: 'ours, one call awaited at a time', reference: false, run: gla, inner: 1 },
        { name: 'ours, 64-token chunks', reference: false, run: (x) => withChunk(64, () => gla(x)) },
        { name: 'ours, 16-token chunks', reference: false, run: (x) => withChunk(16, () => gla(x)) },
        { name: 'ours, split: two single-direction scans (previous kernel)', reference: false, run: (x) => withGlaMode('split', () => gla(x)) },
        { name: 'ours, split, one call awaited at a time', reference: false, run: (x) => withGlaMode('split', () => gla(x)), inner: 1 },
        stock(glaSlice, { repeat: small ? 3 : 1, inner: 1, timeScale: N / slice, name: `tfjs-webgpu composite (reference ops, ${slice}-token slice x ${N / slice})` }),
      ],
    },
    {
      op: 'BiGLA backward',
      shape: `B${B} H${Hh} N${N} dk${Dk} dv${Dv}`,
      flops: 2 * 2 * 2 * 3 * B * Hh * N * Dk * Dv, // about twice the forward's
      make: () => glaInputs(true),
      impls: [
        { name: 'ours (WGSL kernels: dq, dk, dv, dg_fwd, dg_bwd)', reference: false, run: glaBwd },
        { name: 'ours, one call awaited at a time', reference: false, run: glaBwd, inner: 1 },
        { name: 'ours, 16-token chunks', reference: false, run: (x) => withGradChunk(16, () => glaBwd(x)) },
        { name: 'tfjs-ops VJP of the chunked form (previous gradient)', reference: false, run: glaBwdVjp, repeat: 3, inner: 1 },
      ],
    },
    {
      op: 'DLA linear attention',
      shape: `B1 H3 N${Na} d${Da}`,
      flops: 2 * 3 * Na * Da * Da * 2 + 4 * 3 * Na * Da,
      make: () => ({ q: tf.randomUniform([1, 3, Na, Da], 0.1, 2), k: tf.randomUniform([1, 3, Na, Da], 0.1, 2), qr: n4([1, 3, Na, Da]), kr: n4([1, 3, Na, Da]), v: n4([1, 3, Na, Da]) }),
      impls: [ours(dla), stock(dla)],
    },
    {
      op: 'block partition',
      shape: `1x${Hm}x${Hm}x${Cm}, ${f}x${f}`,
      flops: 0,
      make: () => ({ x: n4([1, Hm, Hm, Cm]) }),
      impls: [ours((x) => blockPartition(x.x as tf.Tensor4D, [f, f])), stock((x) => blockPartition(x.x as tf.Tensor4D, [f, f]))],
    },
    {
      op: 'matmul fp32',
      shape: `${n}^3`,
      flops: 2 * n ** 3,
      make: () => ({ a: tf.randomNormal([n, n]), b: tf.randomNormal([n, n]) }),
      impls: [
        ours((x) => matmulFast(x.a as tf.Tensor2D, x.b as tf.Tensor2D)),
        // f16 in / f32 accumulate on subgroup matrices where the device has them (the time includes rounding both
        // fp32 operands to f16); fp32 elsewhere
        { name: 'ours, precision f16 (subgroup matrices)', reference: false, run: (x) => matmulFast(x.a as tf.Tensor2D, x.b as tf.Tensor2D, { precision: 'f16' }) },
        stock((x) => tf.matMul(x.a as tf.Tensor2D, x.b as tf.Tensor2D), { name: 'tfjs-webgpu stock matMul' }),
      ],
    },
  ];
}
