/**
 * The wasm training kernels against tfjs-backend-cpu's own kernels (the reference implementation) on odd
 * shapes, strides, paddings and kernel sizes; gradients of a small conv/depthwise network on wasm against cpu;
 * no tensor or wasm buffer left behind; typed refusals; and a few training steps of 'seg_test' on wasm.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { batchMatMulWasmConfig } from '../../kernels/wasm_training/batch_matmul.ts';
import { conv2dBackpropInputWasmConfig } from '../../kernels/wasm_training/conv2d_backprop_input.ts';
import { identitySharedWasmConfig } from '../../kernels/wasm_training/identity_shared.ts';
import { WASM_TRAINING_KERNELS } from '../../kernels/wasm_training/index.ts';
import { buildTaskModel } from '../../pipelines/task_model.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../pipelines/train/optim.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';
import { diceCeLoss } from '../../pipelines/train/seg_loss.ts';
import { seeded } from '../_helpers/close.ts';

beforeAll(async () => {
  await selectDevice('cpu');
  await selectDevice('wasm');
});

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
type Inputs = Record<string, { data: Float32Array; shape: number[] }>;

/** Runs one kernel on a backend from host arrays; returns its values and shape. */
async function run(backend: string, kernel: string, inputs: Inputs, attrs: Record<string, unknown>) {
  await tf.setBackend(backend);
  const ts = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
  const out = tf.engine().runKernel(kernel, ts, attrs as unknown as NamedAttrMap) as tf.Tensor;
  const res = { values: await out.data(), shape: out.shape };
  tf.dispose([out, ...Object.values(ts)]);
  return res;
}

/** max |a − b| / max |b|: the relative error at the scale of the result. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / Math.max(s, 1e-30);
}

async function expectSameAsCpu(kernel: string, inputs: Inputs, attrs: Record<string, unknown>) {
  const want = await run('cpu', kernel, inputs, attrs);
  const tensorsBefore = tf.memory().numTensors;
  await tf.setBackend('wasm');
  const idsBefore = tf.backend().numDataIds();
  const got = await run('wasm', kernel, inputs, attrs);
  expect(got.shape).toEqual(want.shape);
  expect(relErr(got.values, want.values)).toBeLessThan(1e-4);
  // nothing the kernel made along the way survives it
  expect(tf.memory().numTensors).toBe(tensorsBefore);
  expect(tf.backend().numDataIds()).toBe(idsBefore);
}

const outSize = (n: number, k: number, s: number, pad: Pad, axis: 0 | 1) => {
  if (pad === 'same') return Math.ceil(n / s);
  if (pad === 'valid') return Math.ceil((n - k + 1) / s);
  const [a, b] = pad[axis + 1]!;
  return Math.floor((n + a + b - k) / s) + 1;
};

// [N, H, W, Cin, Cout or multiplier, kh, kw, stride, padding]
type Case = [number, number, number, number, number, number, number, number | [number, number], Pad];
const CONV: Case[] = [
  [2, 9, 7, 3, 5, 3, 3, 1, 'same'],
  [3, 11, 8, 4, 6, 3, 3, 2, 'same'],
  [2, 10, 13, 5, 3, 5, 5, 2, 'valid'],
  [1, 15, 12, 2, 4, 7, 7, 2, 'same'],
  [2, 6, 9, 7, 5, 1, 1, 1, 'valid'],
  [2, 17, 16, 3, 8, 7, 7, 4, 'same'],
  [2, 8, 11, 3, 4, 3, 5, [2, 1], 'same'],
  [2, 9, 10, 3, 2, 3, 3, 2, [[0, 0], [1, 2], [0, 1], [0, 0]]],
  [2, 8, 8, 6, 6, 4, 4, 2, 'same'],
];

describe('Conv2DBackpropFilter on wasm = the cpu kernel', () => {
  it.each(CONV)('N=%i H=%i W=%i Cin=%i Cout=%i k=%ix%i stride %s %s', async (N, H, W, cin, cout, kh, kw, s, pad) => {
    const [sh, sw] = typeof s === 'number' ? [s, s] : s;
    const [oh, ow] = [outSize(H, kh, sh, pad, 0), outSize(W, kw, sw, pad, 1)];
    const x = { data: seeded(N * H * W * cin, 1), shape: [N, H, W, cin] };
    const dy = { data: seeded(N * oh * ow * cout, 2), shape: [N, oh, ow, cout] };
    await expectSameAsCpu('Conv2DBackpropFilter', { x, dy }, { strides: [sh, sw], pad, dataFormat: 'NHWC', filterShape: [kh, kw, cin, cout] });
  });
});

describe('Conv2DBackpropInput on wasm (replaced: XNNPACK convolution) = the cpu kernel', () => {
  it.each(CONV)('N=%i H=%i W=%i Cin=%i Cout=%i k=%ix%i stride %s %s', async (N, H, W, cin, cout, kh, kw, s, pad) => {
    const [sh, sw] = typeof s === 'number' ? [s, s] : s;
    const [oh, ow] = [outSize(H, kh, sh, pad, 0), outSize(W, kw, sw, pad, 1)];
    const dy = { data: seeded(N * oh * ow * cout, 16), shape: [N, oh, ow, cout] };
    const filter = { data: seeded(kh * kw * cin * cout, 17), shape: [kh, kw, cin, cout] };
    await expectSameAsCpu('Conv2DBackpropInput', { dy, filter }, { strides: [sh, sw], pad, dataFormat: 'NHWC', inputShape: [N, H, W, cin] });
  });

  it('keeps NCHW on the stock kernel', async () => {
    const dy = { data: seeded(2 * 4 * 5 * 6, 18), shape: [2, 4, 5, 6] };
    const filter = { data: seeded(3 * 3 * 3 * 4, 19), shape: [3, 3, 3, 4] };
    await expectSameAsCpu('Conv2DBackpropInput', { dy, filter }, { strides: 1, pad: 'same', dataFormat: 'NCHW', inputShape: [2, 3, 5, 6] });
  });
});

describe('DepthwiseConv2dNative gradients on wasm = the cpu kernels', () => {
  // the multiplier column (Cout) is used as the channel multiplier: 1 mostly, 2 and 3 for the general case
  const DW: Case[] = CONV.map((c, i) => [c[0], c[1], c[2], c[3] + 1, i === 2 ? 2 : i === 5 ? 3 : 1, c[5], c[6], c[7], c[8]]);
  it.each(DW)('N=%i H=%i W=%i C=%i m=%i k=%ix%i stride %s %s', async (N, H, W, C, m, kh, kw, s, pad) => {
    const [sh, sw] = typeof s === 'number' ? [s, s] : s;
    const [oh, ow] = [outSize(H, kh, sh, pad, 0), outSize(W, kw, sw, pad, 1)];
    const x = { data: seeded(N * H * W * C, 3), shape: [N, H, W, C] };
    const dy = { data: seeded(N * oh * ow * C * m, 4), shape: [N, oh, ow, C * m] };
    const filter = { data: seeded(kh * kw * C * m, 5), shape: [kh, kw, C, m] };
    const attrs = { strides: [sh, sw], pad, dilations: [1, 1] };
    await expectSameAsCpu('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: [kh, kw, C, m] });
    await expectSameAsCpu('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { ...attrs, inputShape: [N, H, W, C] });
  });
});

describe('refusals', () => {
  const code = (f: () => unknown) => {
    try {
      f();
      return 'none';
    } catch (e) {
      return e instanceof GatedError ? e.code : String(e);
    }
  };
  it('names NCHW and dilations > 1 with a typed error', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 3, 6, 6]);
    const dy = tf.zeros([1, 4, 6, 6]);
    expect(code(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] } as unknown as NamedAttrMap))).toBe('config');
    const xd = tf.zeros([1, 8, 8, 2]);
    const dyd = tf.zeros([1, 8, 8, 2]);
    const attrs = { strides: 1, pad: 'same', dilations: [2, 2] } as const;
    expect(code(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x: xd, dy: dyd }, { ...attrs, filterShape: [3, 3, 2, 1] } as unknown as NamedAttrMap))).toBe('config');
    expect(code(() => tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy: dyd, filter: tf.zeros([3, 3, 2, 1]) }, { ...attrs, inputShape: [1, 8, 8, 2] } as unknown as NamedAttrMap))).toBe('config');
    tf.dispose([x, dy, xd, dyd]);
  });
});

describe('backward passes on wasm', () => {
  it('every kernel is registered for wasm, the replacements included', () => {
    for (const k of WASM_TRAINING_KERNELS) expect(tf.getKernel(k.kernelName, 'wasm')?.kernelFunc).toBe(k.kernelFunc);
    expect(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc).toBe(batchMatMulWasmConfig.kernelFunc);
    expect(tf.getKernel('Identity', 'wasm')?.kernelFunc).toBe(identitySharedWasmConfig.kernelFunc);
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc).toBe(conv2dBackpropInputWasmConfig.kernelFunc);
  });

  it('a conv/depthwise network has the gradients it has on cpu', async () => {
    const x = seeded(2 * 13 * 11 * 3, 6);
    const w1 = seeded(3 * 3 * 3 * 8, 7, -0.5, 0.5);
    const b1 = seeded(8, 8);
    const w2 = seeded(5 * 5 * 8, 9, -0.5, 0.5);
    const w3 = seeded(8 * 6, 10, -0.5, 0.5);
    const w4 = seeded(7 * 7 * 6, 11, -0.5, 0.5);
    const grads = async (backend: string) => {
      await tf.setBackend(backend);
      const ts = [tf.tensor4d(x, [2, 13, 11, 3]), tf.tensor4d(w1, [3, 3, 3, 8]), tf.tensor1d(b1), tf.tensor4d(w2, [5, 5, 8, 1]), tf.tensor4d(w3, [1, 1, 8, 6]), tf.tensor4d(w4, [7, 7, 6, 1])];
      const f = (xx: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) => {
        const h1 = tf.fused.conv2d({ x: xx as tf.Tensor4D, filter: a as tf.Tensor4D, bias: b, strides: 2, pad: 'same', activation: 'relu' });
        const h2 = tf.depthwiseConv2d(h1, c as tf.Tensor4D, 1, 'same');
        const h3 = tf.conv2d(tf.sigmoid(h2), d as tf.Tensor4D, 1, 'valid');
        const h4 = tf.depthwiseConv2d(h3, e as tf.Tensor4D, 2, 'same');
        return tf.sum(tf.square(h4));
      };
      const gs = tf.grads(f)(ts);
      const out = await Promise.all(gs.map((g) => g.data()));
      tf.dispose([...ts, ...gs]);
      return out;
    };
    const want = await grads('cpu');
    const got = await grads('wasm');
    want.forEach((w, i) => expect(relErr(got[i]!, w), `gradient ${i}`).toBeLessThan(1e-4));
  });

  it.each([
    [[37, 19], [19, 23]],
    [[1, 64, 9], [1, 9, 70]],
    [[3, 5, 7], [3, 7, 4]],
    [[3, 5, 7], [1, 7, 4]],
  ])('matMul %j x %j with every transpose = cpu', async (sa, sb) => {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const swap = (s: number[], t: boolean) => (t ? [...s.slice(0, -2), s.at(-1)!, s.at(-2)!] : s);
      const a = { data: seeded(sa.reduce((p, v) => p * v, 1), 14), shape: swap(sa, tA) };
      const b = { data: seeded(sb.reduce((p, v) => p * v, 1), 15), shape: swap(sb, tB) };
      await expectSameAsCpu('BatchMatMul', { a, b }, { transposeA: tA, transposeB: tB });
    }
  });

  it('tf.clone shares the buffer, so a gradient that closes over a tidied input still finds it', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor1d([1, 2, 3]);
    const ids = tf.backend().numDataIds();
    const b = tf.clone(a);
    expect(tf.backend().numDataIds()).toBe(ids);
    a.dispose();
    expect(Array.from(await b.data())).toEqual([1, 2, 3]);
    b.dispose();
    // tf.logSigmoid's gradient reads its input from a closure; the tidy releases that input before backprop
    const x = seeded(6 * 4, 12);
    const w = seeded(4 * 5, 13);
    const grad = async (backend: string) => {
      await tf.setBackend(backend);
      const [xt, wt] = [tf.tensor2d(x, [6, 4]), tf.tensor2d(w, [4, 5])];
      const g = tf.grad((ww: tf.Tensor) => tf.tidy(() => tf.sum(tf.logSigmoid(tf.reshape(tf.add(tf.matMul(xt, ww as tf.Tensor2D), 1), [2, 3, 5])))))(wt);
      const out = await g.data();
      tf.dispose([xt, wt, g]);
      return out;
    };
    expect(relErr(await grad('wasm'), await grad('cpu'))).toBeLessThan(1e-5);
  });

  it("a few AdamW steps of 'seg_test' lower the loss", async () => {
    await tf.setBackend('wasm');
    const model = buildTaskModel(specFromPreset('seg_test', 'segment', 't', ['bg', 'fg']), 2);
    const [B, S] = [2, 32];
    const img = new Float32Array(B * S * S * 3);
    const onehot = new Float32Array(B * S * S * 2);
    for (let b = 0; b < B; b++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
      const p = (b * S + y) * S + x;
      const inside = Math.hypot(x - 12 - 6 * b, y - 16) < 8 + b;
      for (let c = 0; c < 3; c++) img[p * 3 + c] = (inside ? 1 : -1) + 0.1 * Math.sin(p + c);
      onehot[p * 2 + (inside ? 1 : 0)] = 1;
    }
    const xt = tf.tensor4d(img, [B, S, S, 3]);
    const yt = tf.tensor4d(onehot, [B, S, S, 2]);
    const vars = model.variables();
    const opt = new AdamW({ ...ADAMW_DEFAULTS, lr: 3e-3, warmupSteps: 0, totalSteps: 6 });
    const losses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const { value, grads } = tf.variableGrads(() => diceCeLoss(model.predict(xt), yt, 2), vars);
      losses.push((await value.data())[0]!);
      opt.apply(new Map(vars.filter((v) => grads[v.name]).map((v) => [v, grads[v.name]!])));
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[5]!).toBeLessThan(losses[0]! * 0.9);
    opt.dispose();
    tf.dispose([xt, yt]);
    model.dispose();
  }, 60_000);
});
