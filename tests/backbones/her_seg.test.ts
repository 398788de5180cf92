/**
 * HER-Seg specifics that hold for the released code whatever the weights: the 2-D RoPE table layout
 * (rows on the first C/4 pairs, columns on the rest), relative-position invariance of rotated dot
 * products, and the decoder quirk that only hypernetwork MLP 0 (fed the IoU-token slot) shapes the mask.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { createBackbone } from '../../backbones/_registry.ts';
import { applyRope, ropeTables } from '../../backbones/her_seg.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

describe('2-D RoPE', () => {
  it('pair m < C/4 turns by row·θ_m, pair m ≥ C/4 by col·θ_(m−C/4), θ_j = 10000^(−j/(C/4))', () => {
    const C = 16;
    const { cos, sin } = ropeTables(5, 6, C);
    const c = cos.arraySync();
    const s = sin.arraySync();
    expect(c[2]![0]![0]).toBeCloseTo(Math.cos(2), 6); // row 2, pair 0, θ_0 = 1
    expect(c[2]![3]![1]).toBeCloseTo(Math.cos(2), 6); // both channels of a pair
    expect(s[0]![3]![2 * 4]).toBeCloseTo(Math.sin(3), 6); // col 3, pair C/4
    expect(s[1]![0]![2 * 1]).toBeCloseTo(Math.sin(10000 ** -0.25), 6); // row 1, pair 1
    expect(c[4]![5]![2 * 4]).toBeCloseTo(Math.cos(5), 6); // column pairs ignore the row
    tf.dispose([cos, sin]);
  });

  it('rotated dot products depend only on the offset between positions', () => {
    const C = 8;
    const { cos, sin } = ropeTables(6, 6, C);
    const q = tf.randomNormal([1, 1, 1, C], 0, 1, 'float32', 1);
    const k = tf.randomNormal([1, 1, 1, C], 0, 1, 'float32', 2);
    const at = (t: tf.Tensor, r: number, c: number) => tf.tidy(() => {
      const grid = tf.tile(t, [1, 6, 6, 1]) as tf.Tensor4D;
      return tf.slice(applyRope(grid, cos, sin), [0, r, c, 0], [1, 1, 1, C]);
    });
    const dot = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(a, b)).dataSync()[0]!;
    const d1 = dot(at(q, 1, 2), at(k, 3, 0));
    const d2 = dot(at(q, 3, 5), at(k, 5, 3)); // same (Δr, Δc) = (−2, 2)
    const d3 = dot(at(q, 1, 2), at(k, 4, 0)); // a different offset
    expect(Math.abs(d1 - d2)).toBeLessThan(1e-4);
    expect(Math.abs(d1 - d3)).toBeGreaterThan(1e-3);
  });
});

describe('ME-Decoder as released', () => {
  it('only hypernetwork MLP 0 changes the mask', async () => {
    const model = createBackbone('test_her_seg', { seed: 5 });
    const x = tf.randomNormal([1, 32, 48, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const base = await (model.forward(x) as tf.Tensor).data();
    const bump = async (name: string) => {
      const v = model.params.variable(name);
      const old = v.clone();
      v.assign(tf.add(v, 0.5));
      const out = await (model.forward(x) as tf.Tensor).data();
      v.assign(old);
      old.dispose();
      return Math.max(...out.map((o, i) => Math.abs(o - base[i]!)));
    };
    expect(await bump('mask_decoder.output_hypernetworks_mlps.1.layers.2.bias')).toBe(0);
    expect(await bump('mask_decoder.output_hypernetworks_mlps.2.layers.0.kernel')).toBe(0);
    expect(await bump('mask_decoder.output_hypernetworks_mlps.0.layers.2.bias')).toBeGreaterThan(1e-4);
    model.dispose();
  });
});
