/**
 * The training loop shared by every task: epochs of steps on batches the task draws, AdamW with warmup +
 * cosine, validation after each epoch with the best model saved (model.json + weights, loadable at once),
 * a checkpoint after each epoch for --resume, and progress lines with loss, learning rate and ETA. With --ema, a
 * moving average of the weights is what is validated and saved; training continues from the raw weights.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadTaskModel, saveTaskModel, type TaskModel } from '../task_model.ts';
import { loadCheckpoint, saveCheckpoint, type LoopState } from './checkpoint.ts';
import { WeightEma, type EmaCheckpoint } from './ema.ts';
import { AdamW, ADAMW_DEFAULTS, type AdamWConfig } from './optim.ts';
import { Rng } from './rng.ts';
import { variableGradsFreeing } from '../../backbones/layers/recompute.ts';
import { GatedError } from '../../core/errors.ts';

export interface TrainTask {
  /** Steps per epoch. */
  stepsPerEpoch: number;
  /** Loss of one freshly drawn batch (called inside the gradient tape). */
  batchLoss(model: TaskModel, rng: Rng): () => tf.Scalar;
  /** The same batch made off the main thread: reads `rng`'s state when called and sets it to the state after the
   *  batch when it resolves. When present, the loop asks for the next batch before it issues the current step. */
  batchLossAsync?(model: TaskModel, rng: Rng): Promise<() => tf.Scalar>;
  /** Validation after an epoch: the score to maximise and metrics to record. */
  validate(model: TaskModel): Promise<{ score: number; metrics: Record<string, number> }>;
}

/** What every `train --task ...` run takes (cli/train.ts builds it once for both tasks). */
export interface TrainRunOptions {
  data: string;
  /** A preset of the task or a backbone name. */
  model: string;
  outDir: string;
  name: string;
  epochs: number;
  batch: number;
  /** Square training patch; default: the task's own choice. */
  patch?: number;
  stepsPerEpoch?: number;
  lr?: number;
  seed: number;
  resume: boolean;
  /** Start from the weights of this model (fine-tuning) instead of a fresh initialisation. */
  init?: string;
  maxSeconds?: number;
  /** Decay of the weights' moving average (0..1, e.g. 0.999); off when absent. */
  ema?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Recorded in the model card. */
  command?: string;
  device?: string;
}

export interface LoopOptions {
  outDir: string;
  epochs: number;
  seed: number;
  resume: boolean;
  optim?: Partial<AdamWConfig>;
  log?: (line: string) => void;
  /** Wall-clock budget: after every epoch the number of epochs is re-planned to fit it (schedule included). */
  maxSeconds?: number;
  /** Stops cleanly after the epoch in progress (its checkpoint written), e.g. on Ctrl-C. */
  signal?: AbortSignal;
  /** Decay of a moving average of the weights (ema.ts), updated after every step; validation scores it and the
   *  saved models hold it. Off when absent. */
  ema?: number;
  /** Model card fields saved with the best model. */
  card: Record<string, unknown>;
}

/** The loop options of a `train` run: its own fields, and the task's model-card entries with the command added. */
export function runLoopOptions(o: TrainRunOptions, card: Record<string, unknown>): LoopOptions {
  return {
    outDir: o.outDir,
    epochs: o.epochs,
    seed: o.seed,
    resume: o.resume,
    ...(o.maxSeconds ? { maxSeconds: o.maxSeconds } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.lr ? { optim: { lr: o.lr } } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(o.ema !== undefined ? { ema: o.ema } : {}),
    card: { ...card, ...(o.ema !== undefined ? { ema: o.ema } : {}), ...(o.command ? { command: o.command } : {}) },
  };
}

/** `--init`: the weights of another model folder, loaded into `model` (fine-tuning). */
export async function initWeights(model: TaskModel, init: string, log: (line: string) => void): Promise<void> {
  const from = await loadTaskModel(init);
  let grown: string[];
  try {
    grown = model.loadWeights(await from.exportWeights(), { allowMissing: true });
  } finally {
    from.dispose();
  }
  log(`initialised from ${init} (${from.manifest.name}, sha256 ${from.sha256.slice(0, 12)})`);
  if (grown.length) log(`${grown.length} parameter(s) new in this model, kept as initialised: ${grown.slice(0, 8).join(', ')}${grown.length > 8 ? ', …' : ''}`);
}

export interface LoopResult {
  bestScore: number;
  /** Epochs actually planned (after any time-budget cut). */
  epochs: number;
  bestEpoch: number;
  steps: number;
  history: LoopState['history'];
}

export async function trainLoop(model: TaskModel, task: TrainTask, opts: LoopOptions): Promise<LoopResult> {
  const log = opts.log ?? (() => undefined);
  let epochs = opts.epochs;
  const requestedEpochs = opts.epochs;
  let totalSteps = task.stepsPerEpoch * epochs;
  const opt = new AdamW({ ...ADAMW_DEFAULTS, warmupSteps: Math.min(200, Math.ceil(totalSteps * 0.05)), ...opts.optim, totalSteps });
  const ckptDir = `${opts.outDir}/checkpoint`;
  let state: LoopState = { step: 0, epoch: 0, rng: opts.seed, bestScore: -Infinity, history: [] };
  let savedEma: EmaCheckpoint | undefined;
  let resumed = false;
  if (opts.resume) {
    const restored = await loadCheckpoint(ckptDir, model, opt);
    if (restored) {
      const { ema: avg, ...rest } = restored;
      state = rest;
      savedEma = avg;
      resumed = true;
      log(`resumed at epoch ${state.epoch}, step ${state.step} (best score so far ${state.bestScore.toFixed(4)})`);
    }
  }
  const rng = new Rng(state.rng);
  const vars = model.variables();
  let ema: WeightEma | undefined;
  const t0 = Date.now();
  const stepAtStart = state.step;
  const epochAtStart = state.epoch;
  let bestEpoch = state.history.reduce((b, h) => (h.score === state.bestScore ? Number(h.epoch) : b), -1);
  try {
    ema = startEma(vars, opts.ema, resumed ? state : null, savedEma, log);
    const averaged = <T>(fn: () => Promise<T>): Promise<T> => (ema ? ema.withEmaWeights(model, fn) : fn());
    for (let epoch = state.epoch; epoch < epochs; epoch++) {
      const epochStart = Date.now();
      let lossSum = 0;
      let dataMs = 0;
      let issueMs = 0;
      let waitMs = 0;
      const makeBatch = () => {
        const tData = Date.now();
        const f = task.batchLoss(model, rng);
        dataMs += Date.now() - tData;
        return f;
      };
      const ahead = task.batchLossAsync?.bind(task);
      // asked for before the step is issued; a rejection is read where the batch is awaited, never left unhandled
      const askAhead = (): Promise<() => tf.Scalar> => {
        const p = ahead!(model, rng);
        p.catch(() => undefined);
        return p;
      };
      let next: (() => tf.Scalar) | null = ahead ? null : makeBatch();
      let asked: Promise<() => tf.Scalar> | null = ahead ? askAhead() : null;
      for (let s = 0; s < task.stepsPerEpoch; s++) {
        let f: () => tf.Scalar;
        if (asked) {
          const tData = Date.now();
          f = await asked;
          dataMs += Date.now() - tData;
          asked = s + 1 < task.stepsPerEpoch ? askAhead() : null;
        } else f = next!;
        const tStep = Date.now();
        // frees each op's saved tensors and each intermediate gradient as the backward pass goes (same gradients,
        // about half the peak of tf.variableGrads, which keeps both until the pass ends)
        const { value, grads } = variableGradsFreeing(f, vars);
        const lr = opt.apply(new Map(vars.filter((v) => grads[v.name]).map((v) => [v, grads[v.name]!])));
        ema?.update(vars);
        tf.dispose(Object.values(grads));
        const tQueued = Date.now();
        // the next batch is made on the host while a GPU backend runs this step, and the loss is read after that;
        // a step draws nothing from the generator, so the batches and their seeds are those made after the step
        if (!ahead) next = s + 1 < task.stepsPerEpoch ? makeBatch() : null;
        const tWait = Date.now();
        const lossValue = (await value.data())[0]!;
        value.dispose();
        issueMs += tQueued - tStep;
        waitMs += Date.now() - tWait;
        if (!Number.isFinite(lossValue)) throw new Error(`the loss became ${lossValue} at step ${state.step}`);
        lossSum += lossValue;
        state.step++;
        if (state.step % 20 === 0 || state.step === totalSteps) {
          const rate = (state.step - stepAtStart) / ((Date.now() - t0) / 1000);
          const eta = (totalSteps - state.step) / Math.max(rate, 1e-9);
          log(`step ${state.step}/${totalSteps} epoch ${epoch + 1} loss ${lossValue.toFixed(4)} lr ${lr.toExponential(2)} ${rate.toFixed(2)} it/s ETA ${Math.round(eta)} s`);
        }
      }
      const tVal = Date.now();
      const { score, metrics } = await averaged(() => task.validate(model));
      const valMs = Date.now() - tVal;
      const record = { epoch: epoch + 1, step: state.step, loss: lossSum / task.stepsPerEpoch, score, ...metrics, seconds: Math.round((Date.now() - t0) / 1000) };
      state.history.push(record);
      // issue and wait apart: a wait near zero means the device had finished while the host made the next batch (the
      // host bounds the step), a wait longer than the batches means their making was hidden behind the device's work
      log(`epoch ${epoch + 1}/${epochs}: train loss ${record.loss.toFixed(4)}, validation score ${score.toFixed(4)} (batches ${(dataMs / 1000).toFixed(1)} s, steps ${((issueMs + waitMs) / 1000).toFixed(1)} s = issue ${(issueMs / 1000).toFixed(1)} + wait ${(waitMs / 1000).toFixed(1)}, validation ${(valMs / 1000).toFixed(1)} s)`);
      if (score > state.bestScore) {
        state.bestScore = score;
        bestEpoch = epoch + 1;
        await averaged(() => saveTaskModel(opts.outDir, model, { ...opts.card, validation: { epoch: epoch + 1, score, ...metrics }, history: state.history }));
      }
      state.epoch = epoch + 1;
      state.rng = rng.state;
      if (opts.maxSeconds) {
        // re-planned after every epoch from the last one's duration: the first epoch also pays for shader
        // compilation and would make the plan far too short; never beyond the epochs asked for
        const now = Date.now();
        const perEpoch = (now - epochStart) / 1000;
        const left = opts.maxSeconds - (now - t0) / 1000;
        const fit = Math.min(requestedEpochs, Math.max(state.epoch, state.epoch + Math.floor(left / perEpoch)));
        if (fit !== epochs) {
          epochs = fit;
          totalSteps = task.stepsPerEpoch * epochs;
          opt.config.totalSteps = totalSteps;
          log(`time budget ${opts.maxSeconds} s, ${Math.max(0, left).toFixed(0)} s left at ${perEpoch.toFixed(1)} s per epoch: training for ${epochs} epochs`);
        }
      }
      await saveCheckpoint(ckptDir, model, opt, state, ema);
      if (opts.signal?.aborted && state.epoch < epochs) {
        log(`stopped after epoch ${state.epoch}; continue with --resume`);
        break;
      }
    }
    if (state.epoch === epochs && bestEpoch !== epochs) {
      // the best epoch by a small validation set can be a spike of a high learning rate; the weights at the end of
      // the schedule are kept beside it (`last/`), so either can be tested and shipped; with --ema these are the
      // averaged weights its validation scored (the raw ones are in the checkpoint)
      const last = state.history[state.history.length - 1]!;
      await mkdir(join(opts.outDir, 'last'), { recursive: true });
      await averaged(() => saveTaskModel(join(opts.outDir, 'last'), model, { ...opts.card, validation: { ...last }, history: state.history }));
      log(`weights after the last epoch (validation ${Number(last.score).toFixed(4)}) in ${join(opts.outDir, 'last')}`);
    }
  } finally {
    opt.dispose();
    ema?.dispose();
  }
  return { bestScore: state.bestScore, bestEpoch, steps: state.step, epochs, history: state.history };
}

// --- internal ---

/** The moving average asked for, continued from the checkpoint's when it has one (same decay only). */
function startEma(vars: tf.Variable[], decay: number | undefined, resumed: LoopState | null, saved: EmaCheckpoint | undefined, log: (line: string) => void): WeightEma | undefined {
  // a resumed run is the same run: its best score so far was measured on the checkpoint's kind of weights, so
  // another decay (or none) is refused rather than silently changing what the saved model is
  if (saved && decay === undefined) throw new GatedError('usage', `the checkpoint averages the weights (--ema ${saved.decay}); resume with --ema ${saved.decay}`);
  if (decay === undefined) return undefined;
  if (saved && saved.decay !== decay) throw new GatedError('usage', `--ema ${decay} differs from the checkpoint's decay ${saved.decay}; resume with --ema ${saved.decay} or start a new run`);
  const ema = new WeightEma(vars, decay, saved);
  const from = saved ? `continued from the checkpoint after ${saved.step} update${saved.step === 1 ? '' : 's'}` : resumed ? `the checkpoint had none, so it starts from the resumed weights at step ${resumed.step}` : 'starts from the initial weights';
  log(`EMA of the weights on, decay ${decay} (${from}); validation and the saved models use the average`);
  return ema;
}
