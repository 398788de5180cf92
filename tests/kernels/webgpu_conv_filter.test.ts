/**
 * Conv2DBackpropFilter on WebGPU (SwiftShader here): the split-K kernel against a direct sum over positions
 * written from the definition, for the shapes the models use (3x3 'same', strided 'valid', patch embeddings,
 * 1x1) and for position counts that are and are not whole chunks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, Conv2DBackpropFilter, getKernel } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { CHUNK_ROWS, conv2dBackpropFilterWebgpuConfig } from '../../kernels/webgpu_training/conv2d_backprop_filter.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});

function direct(x: Float32Array, xs: number[], dy: Float32Array, filterShape: [number, number, number, number], strides: [number, number], pad: 'same' | 'valid'): Float32Array {
  const info = backend_util.computeConv2DInfo(xs as [number, number, number, number], filterShape, strides, 1, pad);
  const [N, H, W, C] = xs as [number, number, number, number];
  const [kh, kw, , co] = filterShape;
  const out = new Float32Array(kh * kw * C * co);
  for (let a = 0; a < kh; a++)
    for (let b = 0; b < kw; b++)
      for (let n = 0; n < N; n++)
        for (let oy = 0; oy < info.outHeight; oy++)
          for (let ox = 0; ox < info.outWidth; ox++) {
            const iy = oy * strides[0] + a - info.padInfo.top;
            const ix = ox * strides[1] + b - info.padInfo.left;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            for (let c = 0; c < C; c++) {
              const xv = x[((n * H + iy) * W + ix) * C + c]!;
              for (let o = 0; o < co; o++) out[((a * kw + b) * C + c) * co + o]! += xv * dy[((n * info.outHeight + oy) * info.outWidth + ox) * co + o]!;
            }
          }
  return out;
}

describe('Conv2DBackpropFilter on WebGPU', () => {
  it('replaces the stock kernel', () => {
    expect(getKernel(Conv2DBackpropFilter, 'webgpu')?.kernelFunc).toBe(conv2dBackpropFilterWebgpuConfig.kernelFunc);
  });

  const cases: [string, number[], [number, number, number, number], [number, number], 'same' | 'valid'][] = [
    ['3x3 same', [2, 9, 11, 3], [3, 3, 3, 4], [1, 1], 'same'],
    ['3x3 stride 2 same (odd size)', [1, 13, 10, 5], [3, 3, 5, 2], [2, 2], 'same'],
    ['4x4 stride 4 valid (patch embedding)', [2, 16, 12, 3], [4, 4, 3, 6], [4, 4], 'valid'],
    ['1x1', [1, 5, 7, 8], [1, 1, 8, 3], [1, 1], 'valid'],
    [`3x3 same, ${CHUNK_ROWS}+ positions not a whole number of chunks`, [3, 23, 21, 2], [3, 3, 2, 3], [1, 1], 'same'],
    ['3x3 same, exactly two chunks', [2, 32, 32, 2], [3, 3, 2, 2], [1, 1], 'same'],
  ];
  it.each(cases)('%s', async (_name, xs, fs, strides, pad) => {
    const info = backend_util.computeConv2DInfo(xs as [number, number, number, number], fs, strides, 1, pad);
    const x = tf.randomNormal(xs as [number, number, number, number], 0, 1, 'float32', 3) as tf.Tensor4D;
    const dy = tf.randomNormal([xs[0]!, info.outHeight, info.outWidth, fs[3]], 0, 1, 'float32', 4) as tf.Tensor4D;
    const dw = tf.engine().runKernel(Conv2DBackpropFilter, { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape: fs }) as tf.Tensor;
    expect(dw.shape).toEqual(fs);
    const want = direct(await x.data() as Float32Array, xs, await dy.data() as Float32Array, fs, strides, pad);
    const got = (await dw.data()) as Float32Array;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([x, dy, dw]);
  });

  it('keeps NCHW on the stock kernel', async () => {
    const xs = [1, 9, 11, 3];
    const x = tf.randomNormal(xs as [number, number, number, number], 0, 1, 'float32', 8) as tf.Tensor4D;
    const dy = tf.randomNormal([1, 9, 11, 4], 0, 1, 'float32', 9) as tf.Tensor4D;
    const dw = tf.engine().runKernel(Conv2DBackpropFilter, { x: tf.transpose(x, [0, 3, 1, 2]), dy: tf.transpose(dy, [0, 3, 1, 2]) }, { strides: [1, 1], pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] }) as tf.Tensor;
    const want = direct(await x.data() as Float32Array, xs, await dy.data() as Float32Array, [3, 3, 3, 4], [1, 1], 'same');
    const got = (await dw.data()) as Float32Array;
    for (let i = 0; i < want.length; i++) expect(got[i]!).toBeCloseTo(want[i]!, 3);
    tf.dispose([x, dy, dw]);
  });

  it('is the filter gradient of tf.conv2d (backward through the registered gradient)', async () => {
    const x = tf.randomNormal([2, 10, 10, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 6) as tf.Tensor4D;
    const dy = tf.randomNormal([2, 10, 10, 4], 0, 1, 'float32', 7) as tf.Tensor4D;
    const g = tf.grad((f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, f as tf.Tensor4D, 1, 'same'), dy)))(w);
    const want = direct(await x.data() as Float32Array, [2, 10, 10, 3], await dy.data() as Float32Array, [3, 3, 3, 4], [1, 1], 'same');
    const got = (await g.data()) as Float32Array;
    for (let i = 0; i < want.length; i += 7) expect(got[i]!).toBeCloseTo(want[i]!, 3);
    tf.dispose([x, w, dy, g]);
  });
});
