/**
 * Named task-model presets for `gatedvision train --model`: a backbone variant (any registered name, with
 * config overrides) plus a head and the input recipe. A plain backbone name gets the FPN head and the default
 * recipe of the task.
 */
import { getVariant, listBackbones } from '../../backbones/_registry.ts';
import { GatedError } from '../../core/errors.ts';
import type { Normalization } from '../preprocess.ts';
import type { Task, TaskSpec } from '../task_model.ts';

const MR_ZSCORE: Normalization = { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 };

interface Preset {
  task: Task;
  description: string;
  backbone: { arch: string; config: Record<string, unknown> };
  head: { kind: string; config: Record<string, unknown> };
  context: number;
  multipleOf: number;
  normalization: Normalization;
  /** In-plane spacing [x, y] in mm the model is trained and run at. */
  spacing?: [number, number];
}

/** A hierarchical ViG + FPN on MR slices at 1 mm in-plane, `context` neighbours on each side. */
function brainPreset(description: string, vig: Record<string, unknown>, fpn: Record<string, unknown>, context: number): Preset {
  return {
    task: 'segment',
    description,
    backbone: { arch: 'vig_h_t', config: { ...vig, numClasses: 0 } },
    head: { kind: 'fpn', config: fpn },
    context,
    multipleOf: 32,
    normalization: MR_ZSCORE,
    spacing: [1, 1],
  };
}

export const PRESETS: Record<string, Preset> = {
  seg_vig_h_small: brainPreset(
    'small hierarchical ViG (BiGLA, strides 4-32) + FPN, 2.5D (3 slices)',
    { dims: [24, 48, 96, 160], depths: [1, 1, 2, 1], numHeads: [1, 2, 4, 4], dropPath: 0 },
    { dim: 48, detailChannels: 16 },
    1,
  ),
  seg_vig_h_base: brainPreset(
    'hierarchical ViG (BiGLA, strides 4-32, dims 32-256) + FPN, 2.5D (5 slices)',
    { dims: [32, 64, 128, 256], depths: [2, 2, 4, 2], numHeads: [1, 2, 4, 8], dropPath: 0.05 },
    { dim: 64, detailChannels: 16 },
    2,
  ),
  seg_test: {
    task: 'segment',
    description: 'tiny ViG-H + FPN for tests',
    backbone: { arch: 'test_vig_h', config: { numClasses: 0 } },
    head: { kind: 'fpn', config: { dim: 8, detailChannels: 4 } },
    context: 1,
    multipleOf: 32,
    normalization: MR_ZSCORE,
  },
};

/** Refuses a `--model` that is neither one of the task's presets nor a backbone, naming the presets and any name
 *  of either kind that starts like it. */
export function checkModelName(model: string, task: string, presets: string[]): void {
  const backbones = listBackbones();
  if (presets.includes(model) || backbones.includes(model)) return;
  const near = [...presets, ...backbones].filter((n) => n.split('_')[0] === model.split('_')[0]);
  throw new GatedError('unknown_name', `'${model}' is neither a ${task} preset (${presets.join(', ')}) nor a backbone${near.length ? `; did you mean ${near.join(', ')}?` : ''}`);
}

export function specFromPreset(model: string, task: Task, name: string, classes: string[]): TaskSpec {
  const p = PRESETS[model];
  if (p) {
    return {
      name, task, description: p.description, backbone: p.backbone, head: p.head, classes,
      input: { channels: 2 * p.context + 1, context: p.context, multipleOf: p.multipleOf, normalization: p.normalization, canonical: true, ...(p.spacing ? { spacing: p.spacing } : {}) },
    };
  }
  checkModelName(model, 'segmentation', Object.keys(PRESETS));
  const v = getVariant(model);
  return {
    name, task, description: `${v.description} + FPN`,
    backbone: { arch: model, config: { numClasses: 0 } },
    head: { kind: 'fpn', config: {} },
    classes,
    input: { channels: 3, context: 1, multipleOf: Math.max(32, v.input.multipleOf), normalization: MR_ZSCORE, canonical: true },
  };
}
