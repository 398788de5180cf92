/**
 * AdamW (decoupled weight decay, Loshchilov & Hutter) with a linear warmup and cosine decay. Written out
 * because tfjs's Adam has no decoupled decay, and so that its moments can be checkpointed by name.
 */
import * as tf from '@tensorflow/tfjs-core';
import { adamwUpdate } from '../../kernels/adamw/op.ts';

export interface AdamWConfig {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  warmupSteps: number;
  totalSteps: number;
  /** Final learning rate as a fraction of lr. */
  minLrRatio: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { lr: 2e-3, weightDecay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, warmupSteps: 100, totalSteps: 1000, minLrRatio: 0.02 };

export function cosineLr(step: number, c: AdamWConfig): number {
  if (step < c.warmupSteps) return (c.lr * (step + 1)) / c.warmupSteps;
  const t = Math.min(1, (step - c.warmupSteps) / Math.max(1, c.totalSteps - c.warmupSteps));
  const min = c.lr * c.minLrRatio;
  return min + 0.5 * (c.lr - min) * (1 + Math.cos(Math.PI * t));
}

export class AdamW {
  step = 0;
  readonly #m = new Map<tf.Variable, tf.Variable>();
  readonly #v = new Map<tf.Variable, tf.Variable>();

  constructor(public config: AdamWConfig) {}

  /** One update; weight decay skips vectors (norms, biases), as is usual for transformers. */
  apply(grads: Map<tf.Variable, tf.Tensor>): number {
    const c = this.config;
    const lr = cosineLr(this.step, c);
    this.step++;
    const b1c = 1 - c.beta1 ** this.step;
    const b2c = 1 - c.beta2 ** this.step;
    // one scope per parameter: the temporaries of one update are freed before the next (one scope around all of
    // them kept every parameter's temporaries alive together, several times the weights)
    for (const [p, g] of grads) {
      tf.tidy(() => {
        const m = this.#slot(this.#m, p);
        const v = this.#slot(this.#v, p);
        const next = adamwUpdate(p, m, v, g, { beta1: c.beta1, beta2: c.beta2, b1c, b2c, eps: c.eps, lr, lrWd: p.rank > 1 && c.weightDecay > 0 ? lr * c.weightDecay : 0 });
        m.assign(next.m);
        v.assign(next.v);
        p.assign(next.param);
      });
    }
    return lr;
  }

  /** Moments in the order of `vars` (for checkpoints). */
  async exportState(vars: tf.Variable[]): Promise<{ step: number; m: Float32Array[]; v: Float32Array[] }> {
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (const p of vars) {
      m.push((await this.#slot(this.#m, p).data()) as Float32Array);
      v.push((await this.#slot(this.#v, p).data()) as Float32Array);
    }
    return { step: this.step, m, v };
  }

  importState(vars: tf.Variable[], s: { step: number; m: Float32Array[]; v: Float32Array[] }): void {
    this.step = s.step;
    vars.forEach((p, i) => {
      this.#slot(this.#m, p).assign(tf.tensor(s.m[i]!, p.shape));
      this.#slot(this.#v, p).assign(tf.tensor(s.v[i]!, p.shape));
    });
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
  }

  #slot(map: Map<tf.Variable, tf.Variable>, p: tf.Variable): tf.Variable {
    let s = map.get(p);
    if (!s) {
      const z = tf.zerosLike(p);
      s = tf.variable(z, false);
      z.dispose();
      map.set(p, s);
    }
    return s;
  }
}
