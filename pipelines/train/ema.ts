/**
 * An exponential moving average of the trainable weights (`train --ema <decay>`): after every optimizer step
 * ema = d·ema + (1 − d)·w, kept as float32 variables on the model's backend, so a step adds device work and
 * no download. Validation and the saved model use the average; training continues from the raw weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import type { TaskModel } from '../task_model.ts';

/** What a checkpoint holds of the average: its decay, the updates made so far, and the weights in the order of
 *  `model.variables()`. */
export interface EmaCheckpoint {
  decay: number;
  step: number;
  weights: Float32Array[];
}

/** The decay used for the update after `step` earlier ones. */
export function emaDecay(decay: number, step: number): number {
  // the average starts at the weights, not at zero, so there is no bias to correct; what a fixed d = 0.999 does
  // get wrong is the start, which it remembers for thousands of steps (more than many runs here take). The warm
  // start of TensorFlow's ExponentialMovingAverage (num_updates) follows the weights closely at first and reaches
  // d only once the run is long enough for it (after about 9,000 updates for 0.999)
  return Math.min(decay, (1 + step) / (10 + step));
}

export class WeightEma {
  /** Updates made since the average started. */
  step: number;
  readonly #shadow: tf.Variable[];

  /** Starts from the current weights of `vars`, or from `saved` (a checkpoint's) when given. */
  constructor(
    vars: tf.Variable[],
    readonly decay: number,
    saved?: Omit<EmaCheckpoint, 'decay'>,
  ) {
    if (!(decay > 0 && decay < 1)) throw new GatedError('config', `the EMA decay must lie between 0 and 1 (exclusive); got ${decay}`);
    if (saved && (saved.weights.length !== vars.length || saved.weights.some((w, i) => w.length !== vars[i]!.size))) {
      throw new GatedError('config', 'the checkpoint\'s EMA weights do not match the parameters of this model');
    }
    this.step = saved?.step ?? 0;
    // a variable made from a tensor shares its storage until either is assigned: starting costs no copy
    this.#shadow = vars.map((v, i) => tf.tidy(() => tf.variable(saved ? tf.tensor(saved.weights[i]!, v.shape, 'float32') : v, false, undefined, 'float32')));
  }

  /** One update from the weights after an optimizer step (`vars` in the order given to the constructor). */
  update(vars: tf.Variable[]): void {
    if (vars.length !== this.#shadow.length) throw new GatedError('internal', `the EMA holds ${this.#shadow.length} parameters, got ${vars.length}`);
    const d = emaDecay(this.decay, this.step);
    tf.tidy(() => {
      const keep = tf.scalar(d);
      const take = tf.scalar(1 - d);
      // one scope per parameter, as in AdamW.apply: no parameter's temporaries outlive its own update
      vars.forEach((v, i) =>
        tf.tidy(() => {
          const s = this.#shadow[i]!;
          s.assign(tf.add(tf.mul(s, keep), tf.mul(v, take)));
        }),
      );
    });
    this.step++;
  }

  /**
   * Runs `fn` with the averaged weights in the model's variables, then puts the raw weights back exactly (the
   * same storage, not a copy), also when `fn` throws.
   */
  async withEmaWeights<T>(model: Pick<TaskModel, 'variables' | 'replays'>, fn: () => Promise<T>): Promise<T> {
    const vars = model.variables();
    if (vars.length !== this.#shadow.length) throw new GatedError('internal', `the EMA holds ${this.#shadow.length} parameters, the model ${vars.length}`);
    const raw = vars.map((v) => tf.clone(v));
    // a recorded WebGPU forward reads weights in place and only checks that their storage is still alive; both
    // sets stay alive across a swap, so a forward recorded with the other set would still pass for valid
    model.replays.dispose();
    vars.forEach((v, i) => v.assign(this.#shadow[i]!));
    try {
      return await fn();
    } finally {
      vars.forEach((v, i) => v.assign(raw[i]!));
      tf.dispose(raw);
      model.replays.dispose();
    }
  }

  /** The average for a checkpoint (read back once per epoch, like the optimizer's moments). */
  async exportState(): Promise<EmaCheckpoint> {
    const weights: Float32Array[] = [];
    for (const s of this.#shadow) weights.push((await s.data()) as Float32Array);
    return { decay: this.decay, step: this.step, weights };
  }

  dispose(): void {
    tf.dispose(this.#shadow);
    this.#shadow.length = 0;
  }
}
