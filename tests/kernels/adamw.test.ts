/** Fused AdamW step: the WebGPU kernel (SwiftShader) against the tfjs-ops definition, with and without decay. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { adamwUpdate } from '../../kernels/adamw/op.ts';
import { adamwReference } from '../../kernels/adamw/reference.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { setForceReference } from '../../kernels/flags.ts';
import { AdamWUpdate, type AdamWStep } from '../../kernels/kernel_names.ts';
import { AdamW, ADAMW_DEFAULTS } from '../../pipelines/train/optim.ts';
import { maxAbsDiff } from '../_helpers/close.ts';

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
});

const inputs = (shape: number[], seed: number) => ({
  p: tf.randomNormal(shape, 0, 0.5, 'float32', seed),
  m: tf.randomNormal(shape, 0, 0.01, 'float32', seed + 1),
  // second moments are non-negative
  v: tf.abs(tf.randomNormal(shape, 0, 1e-4, 'float32', seed + 2)),
  g: tf.randomNormal(shape, 0, 0.02, 'float32', seed + 3),
});

describe('adamwUpdate on WebGPU vs the definition', () => {
  it.each([
    ['a conv kernel with decay, odd size', [3, 3, 5, 7], 3e-4 * 0.01],
    ['a bias without decay', [37], 0],
  ] as const)('%s: three dispatches, equal parameter and moments', async (_, shape, lrWd) => {
    const { p, m, v, g } = inputs([...shape], 5);
    const step: AdamWStep = { beta1: 0.9, beta2: 0.999, b1c: 1 - 0.9 ** 3, b2c: 1 - 0.999 ** 3, eps: 1e-8, lr: 3e-4, lrWd };
    const prof = await tf.profile(() => {
      const r = adamwUpdate(p, m, v, g, step);
      return [r.param, r.m, r.v];
    });
    expect(prof.kernels.map((k) => k.name)).toEqual([AdamWUpdate, AdamWUpdate, AdamWUpdate]);
    const fast = adamwUpdate(p, m, v, g, step);
    const ref = adamwReference(p, m, v, g, step);
    expect(await maxAbsDiff(fast.m, ref.m)).toBeLessThan(1e-9);
    expect(await maxAbsDiff(fast.v, ref.v)).toBeLessThan(1e-11);
    // the step itself is lr-sized (about 3e-4 per element): equal to a few parts in a million of it
    const moved = await maxAbsDiff(ref.param, p);
    expect(moved).toBeGreaterThan(1e-4);
    expect(await maxAbsDiff(fast.param, ref.param)).toBeLessThan(moved * 1e-5);
    tf.dispose([p, m, v, g, fast.param, fast.m, fast.v, ref.param, ref.m, ref.v, ...(prof.result as tf.Tensor[])]);
  });

  it('decay is applied only where asked: lrWd changes the parameter by p·lrWd', async () => {
    const { p, m, v, g } = inputs([64], 9);
    const base: AdamWStep = { beta1: 0.9, beta2: 0.999, b1c: 0.1, b2c: 0.001, eps: 1e-8, lr: 1e-3, lrWd: 0 };
    const a = adamwUpdate(p, m, v, g, base).param;
    const b = adamwUpdate(p, m, v, g, { ...base, lrWd: 0.05 }).param;
    expect(await maxAbsDiff(tf.sub(a, b), tf.mul(p, 0.05))).toBeLessThan(1e-6);
    tf.dispose([p, m, v, g, a, b]);
  });

  it('AdamW through the fused kernel ends two steps where the composite does', async () => {
    const run = async (reference: boolean) => {
      setForceReference(reference);
      try {
        const w = tf.variable(tf.randomNormal([4, 6], 0, 0.3, 'float32', 1));
        const bias = tf.variable(tf.randomNormal([6], 0, 0.3, 'float32', 2));
        const opt = new AdamW({ ...ADAMW_DEFAULTS, lr: 1e-2, warmupSteps: 1, totalSteps: 10 });
        for (let s = 0; s < 2; s++) {
          const gs = [tf.randomNormal([4, 6], 0, 1, 'float32', 10 + s), tf.randomNormal([6], 0, 1, 'float32', 20 + s)];
          opt.apply(new Map([[w, gs[0]!], [bias, gs[1]!]]));
          tf.dispose(gs);
        }
        opt.dispose();
        return [w, bias] as const;
      } finally {
        setForceReference(false);
      }
    };
    const [wf, bf] = await run(false);
    const [wr, br] = await run(true);
    expect(await maxAbsDiff(wf, wr)).toBeLessThan(1e-6);
    expect(await maxAbsDiff(bf, br)).toBeLessThan(1e-6);
    tf.dispose([wf, bf, wr, br]);
  });
});
