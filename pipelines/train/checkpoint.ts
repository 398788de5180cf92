/**
 * Training checkpoints for --resume: the model's weights, the optimizer's moments and the loop state (step,
 * epoch, RNG, best score, history). The weights file is written first and the state file, which names the
 * weights' sha256, last — both atomically — so a kill at any moment leaves the previous checkpoint usable.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../backbones/weights/safetensors.ts';
import type { StateDict } from '../../backbones/weights/tensors.ts';
import { writeFileAtomic } from '../../core/atomic.ts';
import { GatedError } from '../../core/errors.ts';
import type { TaskModel } from '../task_model.ts';
import type { AdamW } from './optim.ts';

export interface LoopState {
  step: number;
  epoch: number;
  rng: number;
  bestScore: number;
  history: Record<string, number | string>[];
}

const WEIGHTS = 'checkpoint.safetensors';
const STATE = 'checkpoint.json';

export async function saveCheckpoint(dir: string, model: TaskModel, opt: AdamW, state: LoopState): Promise<void> {
  const vars = model.variables();
  const tensors: StateDict = await model.exportWeights();
  const { m, v } = await opt.exportState(vars);
  vars.forEach((p, i) => {
    tensors.set(`optimizer.m.${i}`, { shape: [...p.shape], data: m[i]! });
    tensors.set(`optimizer.v.${i}`, { shape: [...p.shape], data: v[i]! });
  });
  const bytes = writeSafetensors(tensors, {});
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeFileAtomic(join(dir, WEIGHTS), bytes);
  await writeFileAtomic(join(dir, STATE), `${JSON.stringify({ ...state, optimizerStep: opt.step, sha256, model: model.manifest.name })}\n`);
}

/** Restores model, optimizer and loop state; null when the folder has no checkpoint. */
export async function loadCheckpoint(dir: string, model: TaskModel, opt: AdamW): Promise<LoopState | null> {
  if (!existsSync(join(dir, STATE))) return null;
  let raw: LoopState & { optimizerStep: number; sha256: string };
  try {
    raw = JSON.parse(await readFile(join(dir, STATE), 'utf8'));
  } catch (e) {
    throw new GatedError('unsupported_format', `the checkpoint state in ${dir} is not valid JSON`, { cause: e });
  }
  const bytes = new Uint8Array(await readFile(join(dir, WEIGHTS)));
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== raw.sha256) throw new GatedError('corrupt_weights', `the checkpoint weights in ${dir} do not match their state file`);
  const { tensors } = readSafetensors(bytes);
  const weights: StateDict = new Map([...tensors].filter(([n]) => !n.startsWith('optimizer.')));
  model.loadWeights(weights);
  const vars = model.variables();
  const m = vars.map((_, i) => tensors.get(`optimizer.m.${i}`)?.data);
  const v = vars.map((_, i) => tensors.get(`optimizer.v.${i}`)?.data);
  if (m.some((x) => !x) || v.some((x) => !x)) throw new GatedError('config', 'the checkpoint does not hold optimizer moments for every parameter of this model');
  opt.importState(vars, { step: raw.optimizerStep, m: m as Float32Array[], v: v as Float32Array[] });
  return { step: raw.step, epoch: raw.epoch, rng: raw.rng, bestScore: raw.bestScore, history: raw.history };
}
