/**
 * Fused depthwise convolution: the WebGPU kernel (SwiftShader) against the tfjs-ops reference, forward and
 * gradients, for every activation, with and without a gate, 3x3 and 5x5, odd sizes; the reference's exact
 * GELU against the erf-free formula the shader uses is covered by the tolerance.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { depthwiseConv2dFused } from '../../kernels/dwconv/op.ts';
import { DwconvProgram } from '../../kernels/dwconv/webgpu_program.ts';
import { setForceReference } from '../../kernels/flags.ts';
import type { Activation } from '../../kernels/kernel_names.ts';
import { maxAbsDiff } from '../_helpers/close.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});

async function both<T extends tf.Tensor | tf.Tensor[]>(f: () => T): Promise<[T, T]> {
  const fast = f();
  setForceReference(true);
  try {
    return [fast, f()];
  } finally {
    setForceReference(false);
  }
}

const ACTS: Activation[] = ['linear', 'relu', 'silu', 'gelu', 'gelu_tanh', 'sigmoid'];

describe('depthwiseConv2dFused on WebGPU vs reference', () => {
  it.each(ACTS.flatMap((a) => [[a, 3, false], [a, 5, true]] as [Activation, number, boolean][]))('%s k=%i gate=%s', async (activation, ksize, gated) => {
    const x = tf.randomNormal([2, 7, 9, 5], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal([ksize, ksize, 5, 1], 0, 0.5, 'float32', 2) as tf.Tensor4D;
    const b = tf.randomNormal([5], 0, 0.5, 'float32', 3) as tf.Tensor1D;
    const g = tf.randomUniform([2, 7, 9, 5], 0, 1, 'float32', 4) as tf.Tensor4D;
    const opts = { bias: b, activation, ...(gated ? { gate: g } : {}) };
    const before = tf.memory().numTensors;
    const [fast, slow] = await both(() => depthwiseConv2dFused(x, w, opts));
    expect(await maxAbsDiff(fast, slow)).toBeLessThan(1e-5);
    tf.dispose([fast, slow]);
    expect(tf.memory().numTensors).toBe(before);
    const loss = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.square(depthwiseConv2dFused(xx as tf.Tensor4D, ww as tf.Tensor4D, { ...opts, bias: bb as tf.Tensor1D })));
    const [gf, gs] = await both(() => tf.grads(loss)([x, w, b]));
    for (let i = 0; i < 3; i++) expect(await maxAbsDiff(gf[i]!, gs[i]!), `grad ${i}`).toBeLessThan(1e-3);
    tf.dispose([...gf, ...gs, x, w, b, g]);
  });

  // [H, W, C, k, stride, padding]: vec4 channels, stride 2 with odd sizes, 'valid', an even kernel under 'same'
  it.each([
    [7, 9, 8, 3, 1, 'same'],
    [7, 9, 8, 3, 2, 'same'],
    [8, 5, 3, 3, 2, 'valid'],
    [6, 7, 4, 4, 1, 'same'],
  ] as [number, number, number, number, number, 'same' | 'valid'][])('H=%i W=%i C=%i k=%i stride %i %s', async (H, W, C, ks, stride, padding) => {
    const x = tf.randomNormal([2, H, W, C], 0, 1, 'float32', 5) as tf.Tensor4D;
    const w = tf.randomNormal([ks, ks, C, 1], 0, 0.5, 'float32', 6) as tf.Tensor4D;
    const b = tf.randomNormal([C], 0, 0.5, 'float32', 7) as tf.Tensor1D;
    const want = tf.depthwiseConv2d(x, w, stride, padding);
    const g = tf.randomUniform(want.shape, 0, 1, 'float32', 8) as tf.Tensor4D;
    const opts = { bias: b, activation: 'silu' as const, gate: g, padding, strides: stride };
    const [fast, slow] = await both(() => depthwiseConv2dFused(x, w, opts));
    expect(fast.shape).toEqual(want.shape);
    expect(await maxAbsDiff(fast, slow)).toBeLessThan(1e-5);
    const loss = (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.square(depthwiseConv2dFused(xx as tf.Tensor4D, ww as tf.Tensor4D, opts)));
    const [gf, gs] = await both(() => tf.grads(loss)([x, w]));
    for (let i = 0; i < 2; i++) expect(await maxAbsDiff(gf[i]!, gs[i]!), `grad ${i}`).toBeLessThan(1e-3);
    tf.dispose([x, w, b, g, want, fast, slow, ...gf, ...gs]);
  });

  it('runs the registered kernel, and bakes only what its shader key names', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(tf.getKernel('DepthwiseConv2dFused', 'webgpu')).toBeDefined();
    const a = new DwconvProgram([1, 4, 4, 8], 'silu', true);
    const b = new DwconvProgram([2, 9, 3, 16], 'silu', true);
    expect(new DwconvProgram([1, 4, 4, 3], 'silu', true).shaderKey).not.toBe(a.shaderKey); // scalar vs vec4 bindings
    const c = new DwconvProgram([2, 9, 3, 16], 'relu', false);
    expect(a.shaderKey).toBe(b.shaderKey); // sizes are uniforms: one compiled shader serves both
    expect(a.getUserCode()).toBe(b.getUserCode());
    expect(c.shaderKey).not.toBe(a.shaderKey);
    expect(a.getUserCode()).not.toMatch(/\b(16|9)\b/);
  });

  it('rejects bad shapes with a typed error', () => {
    const x = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    expect(() => depthwiseConv2dFused(x, tf.zeros([3, 3, 2, 1]) as tf.Tensor4D)).toThrow(/filter/);
    expect(() => depthwiseConv2dFused(x, tf.zeros([5, 5, 3, 1]) as tf.Tensor4D, { padding: 'valid' })).toThrow(/does not fit/);
    expect(() => depthwiseConv2dFused(x, tf.zeros([3, 3, 3, 1]) as tf.Tensor4D, { strides: 0 })).toThrow(expect.objectContaining({ code: 'shape' }));
  });
});
