/**
 * Labels packed on the device (several per float32 word, as the WebGPU path reads them back) come out exactly as
 * the plain int32 read-back gives them: 2 and 5 classes (1 and 3 bits per label), whole volumes and scattered slices,
 * with and without a normaliser and in-plane resampling.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { normalizerFor } from '../../pipelines/preprocess.ts';
import { predictLabels } from '../../pipelines/segment_volume.ts';
import { buildTaskModel } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

for (const K of [2, 5]) {
  it(`packed read-back gives the same labels (${K} classes)`, async () => {
    const classes = Array.from({ length: K }, (_, k) => `c${k}`);
    const spec = specFromPreset('seg_test', 'segment', 'pack', classes);
    const model = buildTaskModel({ ...spec, input: { ...spec.input, spacing: [1.5, 1.5] } }, K);
    // larger random weights, so that every class wins somewhere
    for (const v of model.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', K)));
    // 48×36: a slice is a whole number of 24-label words (the two-class fast path); 45×38 is not
    for (const [nx, ny, zs, batch] of [[48, 36, undefined, 4], [45, 38, undefined, 4], [45, 38, [0, 2, 5], 2]] as [number, number, number[] | undefined, number][]) {
      const shape = [nx, ny, 6];
      const data = Int16Array.from({ length: nx * ny * 6 }, (_, i) => ((i * 7919) % 1201) - 200 + (i % nx) * 9);
      const norm = normalizerFor(data, 1, 0, { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 }, true);
      const spacing = [1, 1.2, 2];
      const plain = await predictLabels(model, data, shape, spacing, { batch, packLabels: false }, zs, norm);
      const packed = await predictLabels(model, data, shape, spacing, { batch, packLabels: true }, zs, norm);
      expect(Buffer.from(packed).equals(Buffer.from(plain))).toBe(true);
      // the comparison means something: several classes, and (for scattered slices) untouched slices stay 0
      expect(new Set(plain).size).toBeGreaterThan(1);
      if (zs) expect(plain.subarray(nx * ny, 2 * nx * ny).every((v) => v === 0)).toBe(true);
    }
    model.dispose();
  });
}
