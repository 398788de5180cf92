/** `train --task segment`: data, split, augmentation, Dice+CE, validation Dice on the held-out part. */
import * as tf from '@tensorflow/tfjs-core';
import { withTraining } from '../../backbones/layers/drop_path.ts';
import { predictLabels } from '../segment_volume.ts';
import { buildTaskModel, type TaskModel } from '../task_model.ts';
import { AUGMENT_DEFAULTS, type AugmentConfig } from './augment.ts';
import { initWeights, runLoopOptions, trainLoop, type LoopResult, type TrainRunOptions } from './loop.ts';
import { specFromPreset } from './presets.ts';
import { loadSegDataset, makeBatch, splitCases, type SegCase, type SlabSplit } from './seg_data.ts';
import { diceCeLoss, oneHotHost } from './seg_loss.ts';

export interface TrainSegmentOptions extends TrainRunOptions {
  classes?: string[];
  /** Square training patch; default: the largest padded slice side. */
  patch?: number;
  augment?: Partial<AugmentConfig>;
}

export async function trainSegment(o: TrainSegmentOptions): Promise<LoopResult & { split: string }> {
  const log = o.log ?? (() => undefined);
  const probe = specFromPreset(o.model, 'segment', o.name, ['background', 'foreground']);
  const cases = await loadSegDataset(o.data, probe.input);
  let maxLabel = 1;
  for (const c of cases) for (let i = 0; i < c.labels.length; i++) if (c.labels[i]! > maxLabel) maxLabel = c.labels[i]!;
  const classes = o.classes ?? ['background', ...Array.from({ length: maxLabel }, (_, i) => `label_${i + 1}`)];
  const spec = specFromPreset(o.model, 'segment', o.name, classes);
  const split = splitCases(cases, spec.input.context);
  log(`${cases.length} case(s), ${split.train.length} training slices; validation: ${split.description}`);
  const model = buildTaskModel(spec, o.seed);
  try {
    if (o.init) await initWeights(model, o.init, log);
    const patch = o.patch ?? Math.max(...cases.map((c) => Math.max(c.geo.H, c.geo.W)));
    const aug = { ...AUGMENT_DEFAULTS, ...o.augment };
    const K = classes.length;
    const stepsPerEpoch = o.stepsPerEpoch ?? Math.max(1, Math.ceil(split.train.length / o.batch));
    const res = await trainLoop(
      model,
      {
        stepsPerEpoch,
        batchLoss: (m, rng) => {
          const samples = Array.from({ length: o.batch }, () => split.train[rng.int(split.train.length)]!);
          const { x, y } = makeBatch(cases, samples, spec.input.context, patch, aug, rng);
          const oh = oneHotHost(y, K);
          const seed = rng.state; // read, not drawn: the data stream stays as it was; masks replay on resume
          return () => {
            const xt = tf.tensor4d(x, [o.batch, patch, patch, spec.input.channels]);
            const yt = tf.tensor4d(oh, [o.batch, patch, patch, K]);
            return withTraining(() => diceCeLoss(m.predict(xt), yt, K), { seed });
          };
        },
        validate: (m) => validateDice(m, cases, split, K),
      },
      runLoopOptions(o, {
        task: 'segment',
        data: { folder: o.data, cases: cases.map((c) => ({ name: c.name, shape: c.shape, spacing: c.spacing })), validation: split.description },
        training: { preset: o.model, ...(o.init ? { init: o.init } : {}), epochs: o.epochs, batch: o.batch, patch, stepsPerEpoch, seed: o.seed, augment: aug, loss: 'Dice + cross-entropy', optimizer: 'AdamW, warmup + cosine', ...(o.device ? { device: o.device } : {}) },
      }),
    );
    return { ...res, split: split.description };
  } finally {
    model.dispose();
  }
}

/** Mean foreground Dice over the held-out voxels, computed with the inference path itself. */
export async function validateDice(model: TaskModel, cases: SegCase[], split: SlabSplit, K: number): Promise<{ score: number; metrics: Record<string, number> }> {
  const inter = new Float64Array(K);
  const sumP = new Float64Array(K);
  const sumR = new Float64Array(K);
  for (const { c, zs } of split.val) {
    const k = cases[c]!;
    const pred = await predictLabels(model, k.image, k.shape, k.spacing, {}, zs);
    const plane = k.geo.nx * k.geo.ny;
    for (const z of zs) {
      for (let i = z * plane; i < (z + 1) * plane; i++) {
        const p = pred[i]!;
        const r = k.labels[i]!;
        sumP[p] = sumP[p]! + 1;
        sumR[r] = sumR[r]! + 1;
        if (p === r) inter[p] = inter[p]! + 1;
      }
    }
  }
  const metrics: Record<string, number> = {};
  let sum = 0;
  for (let c = 1; c < K; c++) {
    const d = sumP[c]! + sumR[c]! === 0 ? 1 : (2 * inter[c]!) / (sumP[c]! + sumR[c]!);
    metrics[`dice_${c}`] = d;
    sum += d;
  }
  return { score: sum / (K - 1), metrics };
}
