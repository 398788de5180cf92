/**
 * Stochastic depth (DropPath, Huang et al. 2016; timm `DropPath`): in training, each sample's residual
 * branch is zeroed with probability `rate` and kept ones are scaled by 1/(1 − rate), so the expected output is
 * unchanged; in inference it is the identity. Rates ramp linearly over the blocks as the official code does
 * (`torch.linspace(0, rate, n)`).
 *
 * Training mode reaches the layers in one of two ways: `{ training: true }` in a backbone's forward options,
 * or a `withTraining(fn)` scope around code that calls the model through a wrapper without those options
 * (a task model's `predict`). Masks come from tf's seeded generator: with a seed, a step is reproducible.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';

export interface ForwardOptions {
  /** Train-only behaviour (stochastic depth, dropout) is active. Default: false, or true inside `withTraining`. */
  training?: boolean;
  /** Seed of this pass's random masks; each draw uses the next integer. Default: the scope's seed, else unseeded. */
  seed?: number;
  /**
   * The model may free the input as soon as its stem has read it (inference: no gradient tape), instead of the
   * caller holding it through the whole pass; the caller must not use the input afterwards. Models without a
   * stem that can do so ignore it. Default: false.
   */
  consumeInput?: boolean;
}

/** The random-mask source of one forward pass. */
export class TrainState {
  readonly training: boolean;
  readonly consumeInput: boolean;
  readonly #stream: SeedStream | null;

  constructor(opts: ForwardOptions = {}) {
    const scope = currentScope;
    this.training = opts.training ?? scope !== null;
    this.consumeInput = opts.consumeInput ?? false;
    this.#stream = opts.seed !== undefined ? new SeedStream(opts.seed) : scope?.stream ?? null;
  }

  /** Seed for the next mask (undefined: tf's unseeded generator). */
  nextSeed(): number | undefined {
    return this.#stream?.next();
  }
}

/**
 * Runs `fn` (synchronous: a loss closure) with training mode on for every backbone forward pass inside that
 * passes no `training` option. With `seed`, the masks of the whole call are reproducible.
 */
export function withTraining<T>(fn: () => T, opts: { seed?: number } = {}): T {
  const outer = currentScope;
  currentScope = { stream: opts.seed !== undefined ? new SeedStream(opts.seed) : null };
  try {
    const out = fn();
    if (out && typeof (out as { then?: unknown }).then === 'function') throw new GatedError('internal', 'withTraining takes a synchronous function; the scope would end before the promise settles');
    return out;
  } finally {
    currentScope = outer;
  }
}

/** Whether a `withTraining` call is running (a forward pass inside it trains unless told otherwise). */
export function inTraining(): boolean {
  return currentScope !== null;
}

/** `n` rates from 0 to `rate` inclusive, as torch.linspace(0, rate, n) (one value: 0). */
export function dropPathRamp(rate: number, n: number): number[] {
  checkRate(rate, 'dropPath');
  if (n <= 1) return n === 1 ? [0] : [];
  return Array.from({ length: n }, (_, i) => (rate * i) / (n - 1));
}

export function checkRate(rate: number, name: string): void {
  if (!(rate >= 0 && rate <= 1)) throw new GatedError('config', `${name} must be a probability in [0, 1]; got ${rate}`);
}

/**
 * x with each sample (first axis) zeroed with probability `rate`, the others scaled by 1/(1 − rate), when
 * `state` is training; x itself otherwise.
 */
export function dropPath<T extends tf.Tensor>(x: T, rate: number, state: TrainState): T {
  if (!state.training || rate === 0) return x;
  const seed = state.nextSeed();
  return tf.tidy(() => {
    const keep = 1 - rate;
    const shape = [x.shape[0]!, ...x.shape.slice(1).map(() => 1)];
    // floor(keep + U[0,1)) is 1 with probability keep: a Bernoulli draw per sample
    const mask = tf.floor(tf.add(tf.randomUniform(shape, 0, 1, 'float32', seed), keep));
    return (keep > 0 ? tf.mul(x, tf.div(mask, keep)) : tf.mul(x, mask)) as T;
  });
}

/** Element-wise dropout (PyTorch nn.Dropout) when training; x otherwise. */
export function dropout<T extends tf.Tensor>(x: T, rate: number, state: TrainState): T {
  if (!state.training || rate === 0) return x;
  if (rate >= 1) return tf.zerosLike(x);
  return tf.dropout(x, rate, undefined, state.nextSeed()) as T;
}

// --- internal ---

class SeedStream {
  #next: number;
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new GatedError('config', `seed must be a finite number; got ${seed}`);
    this.#next = Math.trunc(seed);
  }
  next(): number {
    return this.#next++;
  }
}

/** Set only while a `withTraining` callback runs; forward passes are synchronous, so one scope owns it. */
let currentScope: { stream: SeedStream | null } | null = null;
