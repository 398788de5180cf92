/**
 * Registry-driven checks: every variant builds; tiny variants run forward with the right shapes and no
 * NaN, and their feature maps match featureInfo; full-size variants (built for counting only) have the
 * parameter counts stated in architectures.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { countParams, createBackbone, getVariant, listBackbones, resolveConfig, VARIANTS } from '../../backbones/_registry.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

describe('tiny variants run', () => {
  it.each(listBackbones(/^test_/))('%s: forward shapes, no NaN, features match featureInfo, no leaks', async (name) => {
    const e = getVariant(name);
    const size = e.input.nativeSize;
    const model = createBackbone(name, { seed: 1 });
    const before = tf.memory().numTensors;
    const x = tf.randomNormal([2, size, size + 2 * e.input.multipleOf * (e.input.multipleOf > 1 ? 1 : 8), 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const y = model.forward(x) as tf.Tensor;
    const cfg = resolveConfig(name);
    // classifiers give logits; MAXIM the restored image and HER-Seg mask logits, at the input size
    const want = e.family === 'maxim' ? x.shape : e.family === 'her_seg' ? [...x.shape.slice(0, 3), 1] : [2, cfg.numClasses];
    expect(y.shape).toEqual(want);
    const yd = await y.data();
    expect(yd.every(Number.isFinite)).toBe(true);
    const feats = model.forwardFeatures(x);
    expect(feats.length).toBe(model.featureInfo.length);
    feats.forEach((f, i) => {
      const info = model.featureInfo[i]!;
      expect(f.shape[0]).toBe(2);
      expect(f.shape[3]).toBe(info.channels);
      // stride: the map is about input/reduction (the ViG stem rounds)
      expect(Math.abs(f.shape[1] - size / info.reduction)).toBeLessThanOrEqual(1);
    });
    tf.dispose([x, y, ...feats]);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('full-size parameter counts', () => {
  const full = listBackbones().filter((n) => !VARIANTS[n]!.tiny);
  it.each(full)('%s equals the spec table', (name) => {
    const spec = VARIANTS[name]!.specParamsM!;
    const n = countParams(name);
    const digits = String(spec).split('.')[1]?.length ?? 0;
    expect((n / 1e6).toFixed(digits)).toBe(spec.toFixed(digits));
  });
  it('MAXIM with one supervision scale: the exact counts in the official maxim.py comments', () => {
    const want = { maxim_s1: 6_108_515, maxim_s2: 13_353_830, maxim_s3: 20_599_145, maxim_m1: 19_361_219, maxim_m2: 40_839_110, maxim_m3: 62_317_001 };
    for (const [name, n] of Object.entries(want)) expect(countParams(name, { numSupervisionScales: 1 })).toBe(n);
  });
  it('HER-Seg parts: encoder 0.958M, neck 0.615M (architectures.md §2.6)', async () => {
    const { ParamStore } = await import('../../backbones/_params.ts');
    const { HerSegModel, HER_SEG_DEFAULTS } = await import('../../backbones/her_seg.ts');
    const store = new ParamStore(false);
    new HerSegModel(HER_SEG_DEFAULTS, store);
    const part = (p: string) => [...store.specs].filter(([n, s]) => n.startsWith(p) && !s.buffer).reduce((a, [, s]) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    expect((part('image_encoder.') / 1e6).toFixed(3)).toBe('0.958');
    expect((part('neck.') / 1e6).toFixed(3)).toBe('0.615');
  });
  it('exact counts where the spec gives them', () => {
    expect(countParams('activator')).toBe(2_650_890);
    expect(countParams('activator_glu_only')).toBe(1_599_242);
  });
});

describe('registry errors', () => {
  it('unknown names say what exists', () => {
    expect(() => getVariant('vig_xl')).toThrow(GatedError);
    try {
      getVariant('vig_xl');
    } catch (e) {
      expect((e as GatedError).code).toBe('unknown_name');
      expect((e as GatedError).message).toContain('vig_t');
    }
  });
  it('unknown config keys are refused', () => {
    expect(() => createBackbone('test_vig', { overrides: { embedDimm: 8 } })).toThrow(/not an option/);
  });
  it('configs that cannot work are refused at build time', () => {
    expect(() => createBackbone('test_vig', { overrides: { numHeads: 3 } })).toThrow(GatedError);
  });
});
