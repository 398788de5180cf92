/** TLC local pooling for MAXIM: a window covering the input is the global model exactly; smaller windows are local means. */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../backbones/_registry.ts';
import { localAvgPool } from '../../backbones/layers/ops.ts';
import type { MaximModel } from '../../backbones/maxim.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function rand(shape: [number, number, number, number], seed: number): tf.Tensor4D {
  return tf.randomUniform(shape, 0, 1, 'float32', seed) as tf.Tensor4D;
}

describe('localAvgPool', () => {
  it('is the mean over a window at each position, borders replicated as TLC pads them', () => {
    const x = rand([1, 7, 9, 2], 3);
    const [kh, kw] = [3, 4];
    const got = localAvgPool(x, [kh, kw]).arraySync()[0]!;
    const a = x.arraySync()[0]!;
    const [H, W] = [7, 9];
    const [oh, ow] = [H - kh + 1, W - kw + 1];
    const top = Math.floor((H - oh) / 2);
    const left = Math.floor((W - ow) / 2);
    for (let i = 0; i < H; i++)
      for (let j = 0; j < W; j++) {
        // the window of the nearest valid output position
        const r = Math.min(oh - 1, Math.max(0, i - top));
        const c = Math.min(ow - 1, Math.max(0, j - left));
        for (let ch = 0; ch < 2; ch++) {
          let s = 0;
          for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) s += a[r + u]![c + v]![ch]!;
          expect(got[i]![j]![ch]).toBeCloseTo(s / (kh * kw), 5);
        }
      }
  });

  it('is the global mean when the window covers the input', () => {
    const x = rand([2, 6, 5, 3], 4);
    expect(localAvgPool(x, [6, 5]).arraySync()).toEqual(tf.mean(x, [1, 2], true).arraySync());
  });
});

describe('MAXIM with local pooling', () => {
  it('equals the global model exactly when the window is at least the input, and differs when it is smaller', () => {
    const m = createBackbone('test_maxim', { seed: 5 }) as MaximModel;
    const x = rand([1, 16, 16, 3], 6);
    const global = m.forward(x).dataSync();
    m.localPooling = [16, 16];
    const covered = m.forward(x).dataSync();
    m.localPooling = [40, 24];
    const larger = m.forward(x).dataSync();
    m.localPooling = [8, 8];
    const local = m.forward(x).dataSync();
    m.localPooling = null;
    const again = m.forward(x).dataSync();
    expect(Array.from(covered)).toEqual(Array.from(global));
    expect(Array.from(larger)).toEqual(Array.from(global));
    expect(Array.from(again)).toEqual(Array.from(global));
    let maxDiff = 0;
    for (let i = 0; i < global.length; i++) maxDiff = Math.max(maxDiff, Math.abs(local[i]! - global[i]!));
    expect(maxDiff).toBeGreaterThan(1e-6);
    m.dispose();
  });
});
