/**
 * Training checkpoints for --resume: the model's weights, the optimizer's moments, the weights' moving average
 * when --ema is on, and the loop state (step, epoch, RNG, best score, history). The weights file is written
 * first and the state file, which names the weights' sha256, last — both atomically — so a kill at any moment
 * leaves the previous checkpoint usable.
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
import type { EmaCheckpoint, WeightEma } from './ema.ts';
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

/** `ema`: the weights' moving average, saved beside the optimizer's moments (its tensors by parameter index). */
export async function saveCheckpoint(dir: string, model: TaskModel, opt: AdamW, state: LoopState, ema?: WeightEma): Promise<void> {
  const vars = model.variables();
  const tensors: StateDict = await model.exportWeights();
  const { m, v } = await opt.exportState(vars);
  vars.forEach((p, i) => {
    tensors.set(`optimizer.m.${i}`, { shape: [...p.shape], data: m[i]! });
    tensors.set(`optimizer.v.${i}`, { shape: [...p.shape], data: v[i]! });
  });
  const avg = ema ? await ema.exportState() : undefined;
  avg?.weights.forEach((w, i) => tensors.set(`ema.${i}`, { shape: [...vars[i]!.shape], data: w }));
  const bytes = writeSafetensors(tensors, {});
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await writeFileAtomic(join(dir, WEIGHTS), bytes);
  const emaState = avg ? { ema: { decay: avg.decay, step: avg.step } } : {};
  await writeFileAtomic(join(dir, STATE), `${JSON.stringify({ ...state, optimizerStep: opt.step, ...emaState, sha256, model: model.manifest.name })}\n`);
}

/** Restores model, optimizer and loop state, and returns the moving average when the checkpoint has one; null
 *  when the folder has no checkpoint. */
export async function loadCheckpoint(dir: string, model: TaskModel, opt: AdamW): Promise<(LoopState & { ema?: EmaCheckpoint }) | null> {
  if (!existsSync(join(dir, STATE))) return null;
  let raw: LoopState & { optimizerStep: number; sha256: string; ema?: { decay: number; step: number } };
  try {
    raw = JSON.parse(await readFile(join(dir, STATE), 'utf8'));
  } catch (e) {
    throw new GatedError('unsupported_format', `the checkpoint state in ${dir} is not valid JSON`, { cause: e });
  }
  const bytes = new Uint8Array(await readFile(join(dir, WEIGHTS)));
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== raw.sha256) throw new GatedError('corrupt_weights', `the checkpoint weights in ${dir} do not match their state file`);
  const { tensors } = readSafetensors(bytes);
  const weights: StateDict = new Map([...tensors].filter(([n]) => !n.startsWith('optimizer.') && !n.startsWith('ema.')));
  model.loadWeights(weights);
  const vars = model.variables();
  const m = vars.map((_, i) => tensors.get(`optimizer.m.${i}`)?.data);
  const v = vars.map((_, i) => tensors.get(`optimizer.v.${i}`)?.data);
  if (m.some((x) => !x) || v.some((x) => !x)) throw new GatedError('config', 'the checkpoint does not hold optimizer moments for every parameter of this model');
  opt.importState(vars, { step: raw.optimizerStep, m: m as Float32Array[], v: v as Float32Array[] });
  const state: LoopState = { step: raw.step, epoch: raw.epoch, rng: raw.rng, bestScore: raw.bestScore, history: raw.history };
  if (!raw.ema) return state;
  const avg = vars.map((_, i) => tensors.get(`ema.${i}`)?.data);
  if (avg.some((x) => !x)) throw new GatedError('config', 'the checkpoint names a moving average (--ema) but does not hold it for every parameter of this model');
  return { ...state, ema: { decay: raw.ema.decay, step: raw.ema.step, weights: avg as Float32Array[] } };
}
