/**
 * ViG-H for detection/segmentation (the official Backbone_HierViG): with `outNorms` a Backbone_HierViG state
 * dict (outnorm{i} LayerNorms, no classifier) loads strictly, and the features are LayerNorm(stage output)
 * with those weights; a classifier ViG-H refuses the outnorm keys as unexpected.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { ParamStore } from '../../backbones/_params.ts';
import { countParams } from '../../backbones/_registry.ts';
import { convertVigHCheckpoint, VIG_H_DEFAULTS, VigHModel, type VigHConfig } from '../../backbones/vig_h.ts';
import { loadPth } from '../../backbones/weights/pth.ts';
import type { StateDict } from '../../backbones/weights/tensors.ts';
import { fixtureBytes, fixtureIo, maxRelErr, tensorOf } from './_fixtures.ts';

// the configuration of the official-code fixture vig_h_mini (tests/_oracles/backbone_fixtures.py)
const MINI: VigHConfig = { ...VIG_H_DEFAULTS, dims: [16, 24, 32, 32], depths: [1, 1, 1, 1], numHeads: [1, 2, 2, 2], numClasses: 10 };

/** The fixture's HierViG state dict turned into a Backbone_HierViG one: classifier deleted, outnorm{i} added. */
function backboneStateDict(): { sd: StateDict; outnorm: Map<string, Float32Array> } {
  const sd = loadPth(fixtureBytes('vig_h_mini.pth'));
  for (const k of [...sd.keys()]) if (k.startsWith('classifier.')) sd.delete(k);
  const outnorm = new Map<string, Float32Array>();
  MINI.dims.forEach((C, i) => {
    const w = Float32Array.from({ length: C }, (_, j) => 0.5 + ((j * 7 + i) % 5) / 4);
    const b = Float32Array.from({ length: C }, (_, j) => ((j * 3 + i) % 7) / 10 - 0.3);
    sd.set(`outnorm${i}.weight`, { shape: [C], data: w });
    sd.set(`outnorm${i}.bias`, { shape: [C], data: b });
    outnorm.set(`${i}.w`, w);
    outnorm.set(`${i}.b`, b);
  });
  return { sd, outnorm };
}

beforeAll(async () => {
  await selectDevice('cpu');
});

describe('Backbone_HierViG (outNorms)', () => {
  const { sd, outnorm } = backboneStateDict();
  let det: VigHModel;
  let plain: VigHModel;
  beforeAll(() => {
    det = new VigHModel({ ...MINI, outNorms: true }, new ParamStore(true));
    plain = new VigHModel(MINI, new ParamStore(true));
  });
  afterAll(() => {
    det.dispose();
    plain.dispose();
  });

  it('a Backbone_HierViG state dict loads strictly (outnorm keys mapped, no classifier expected)', () => {
    expect(() => det.params.load(convertVigHCheckpoint(sd))).not.toThrow();
    expect(det.featureInfo.map((f) => f.name)).toEqual(['outnorm0', 'outnorm1', 'outnorm2', 'outnorm3']);
    expect([...det.params.specs.keys()].some((k) => k.startsWith('classifier.'))).toBe(false);
  });

  it('features equal LayerNorm(stage output) (eps 1e-5, channels-last) computed with plain tf ops', async () => {
    plain.params.load(convertVigHCheckpoint(loadPth(fixtureBytes('vig_h_mini.pth'))));
    const x = tensorOf(fixtureIo('vig_h_mini'), 'input0') as tf.Tensor4D;
    const raw = plain.forwardFeatures(x);
    const got = det.forwardFeatures(x);
    expect(got.length).toBe(4);
    for (let i = 0; i < 4; i++) {
      const want = tf.tidy(() => {
        const t = raw[i]!;
        const mean = tf.mean(t, -1, true);
        const variance = tf.mean(tf.square(tf.sub(t, mean)), -1, true);
        const n = tf.div(tf.sub(t, mean), tf.sqrt(tf.add(variance, 1e-5)));
        return tf.add(tf.mul(n, tf.tensor1d(outnorm.get(`${i}.w`)!)), tf.tensor1d(outnorm.get(`${i}.b`)!));
      });
      expect(got[i]!.shape).toEqual(raw[i]!.shape);
      expect(await maxRelErr(got[i]!, want)).toBeLessThan(1e-5);
      // and the norm did something: the raw stage output is not the answer
      expect(await maxRelErr(raw[i]!, want)).toBeGreaterThan(1e-2);
      want.dispose();
    }
    tf.dispose([x, ...raw, ...got]);
  });

  it('forward (classification) is refused with a typed error: the detection backbone has no classifier', () => {
    const x = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    expect(() => det.forward(x)).toThrow(GatedError);
    x.dispose();
  });

  it('a classifier ViG-H reports the outnorm keys as unexpected (and the classifier as missing)', () => {
    let err: unknown;
    try {
      plain.params.load(convertVigHCheckpoint(sd));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatedError);
    expect((err as GatedError).code).toBe('config');
    const details = (err as GatedError).details as { missing: string[]; unexpected: string[] };
    expect(details.unexpected.sort()).toEqual(MINI.dims.flatMap((_, i) => [`outnorm${i}.bias`, `outnorm${i}.weight`]).sort());
    expect(details.missing).toContain('classifier.norm.weight');
  });

  it('parameter count: 2·ΣC of outnorms instead of the classifier (ViG-H-T)', () => {
    const dims = [96, 192, 384, 768];
    const classifier = 2 * 768 + 768 * 1000 + 1000;
    const outnorms = 2 * dims.reduce((a, b) => a + b, 0);
    expect(countParams('vig_h_t', { outNorms: true })).toBe(countParams('vig_h_t') - classifier + outnorms);
  });
});
