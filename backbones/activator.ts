/**
 * Activator (arXiv 2405.15953; Abdullah-88/Activator): a GLU unit in place of attention,
 *   ActGU(x) = (LN_h(GELU(x·W₁ + b₁)) ⊙ LN_h(x·W₂ + b₂))·W₃ + b₃   (one LN_h shared by both branches),
 * block: x += ActGU(LN(x)); x += FFN(LN(x)) with the same LN (the `glaOnly` variant drops the FFN).
 * Patchify conv k=s=patch, no position embedding, mean pool, linear head (the repo's train.py wrapper).
 * As released, nothing mixes tokens before the pool (architectures.md §4.2). NHWC, float32.
 * The official code has no stochastic depth; its FFN dropout (after the GELU and after the second linear)
 * is active in training.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fanInUniform, ones, Param, ParamStore, zeros } from './_params.ts';
import type { Backbone, FeatureInfo } from './_types.ts';
import { checkRate, dropout, TrainState, type ForwardOptions } from './layers/drop_path.ts';
import { chainBlocks, conv2d, gelu, layerNorm, linear } from './layers/ops.ts';
import { convertByRules, type Layout } from './weights/convert.ts';
import type { StateDict } from './weights/tensors.ts';

export interface ActivatorConfig {
  dModel: number;
  dFfn: number;
  numLayers: number;
  patchSize: number;
  imgSize: number;
  inChans: number;
  numClasses: number;
  /** The "second MLP removed" variant (activator_only_GEGLU.py). */
  glaOnly: boolean;
  dropout: number;
}

export const ACTIVATOR_DEFAULTS: ActivatorConfig = { dModel: 256, dFfn: 512, numLayers: 4, patchSize: 4, imgSize: 32, inChans: 3, numClasses: 10, glaOnly: false, dropout: 0.5 };

const EPS = 1e-5;

interface ActivatorBlock {
  nw: Param; nb: Param; p1: Param; p1b: Param; p2: Param; p2b: Param; p3: Param; p3b: Param; hw: Param; hb: Param;
  f1?: Param; f1b?: Param; f2?: Param; f2b?: Param;
}

export class ActivatorModel implements Backbone {
  readonly arch = 'activator';
  readonly featureInfo: readonly FeatureInfo[];
  readonly #p: Record<string, Param>;
  readonly #blocks: ActivatorBlock[] = [];

  constructor(
    readonly config: ActivatorConfig,
    readonly params: ParamStore,
  ) {
    const c = config;
    const D = c.dModel;
    const F = c.dFfn;
    const s = params;
    checkRate(c.dropout, 'dropout');
    const lin = (b: ReturnType<ParamStore['scope']>, n: string, i: number, o: number): [Param, Param] => [b.add(`${n}.kernel`, [i, o], fanInUniform(i)), b.add(`${n}.bias`, [o], fanInUniform(i))];
    this.#p = {
      patch: s.add('patcher.kernel', [c.patchSize, c.patchSize, c.inChans, D], fanInUniform(c.inChans * c.patchSize ** 2)),
      patchb: s.add('patcher.bias', [D], zeros),
    };
    for (let i = 0; i < c.numLayers; i++) {
      const b = s.scope(`blocks.${i}`);
      const [p1, p1b] = lin(b, 'actgu.proj_1', D, F);
      const [p2, p2b] = lin(b, 'actgu.proj_2', D, F);
      const [p3, p3b] = lin(b, 'actgu.proj_3', F, D);
      const blk: ActivatorBlock = { nw: b.add('norm.weight', [D], ones), nb: b.add('norm.bias', [D], zeros), p1, p1b, p2, p2b, p3, p3b, hw: b.add('actgu.norm.weight', [F], ones), hb: b.add('actgu.norm.bias', [F], zeros) };
      if (!c.glaOnly) {
        [blk.f1, blk.f1b] = lin(b, 'ffn.fc1', D, F);
        [blk.f2, blk.f2b] = lin(b, 'ffn.fc2', F, D);
      }
      this.#blocks.push(blk);
    }
    if (c.numClasses > 0) [this.#p.head, this.#p.headb] = lin(s.scope('classifier'), 'linear', D, c.numClasses);
    this.featureInfo = [{ name: 'blocks', channels: D, reduction: c.patchSize }];
  }

  forwardFeatures(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D[] {
    return [this.#features(x, new TrainState(opts))];
  }

  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const f = tf.mean(this.#features(x, new TrainState(opts)), [1, 2]);
      return (this.#p.head ? linear(f, this.#p.head, this.#p.headb) : f) as tf.Tensor2D;
    });
  }

  dispose(): void {
    this.params.dispose();
  }

  #features(x: tf.Tensor4D, state: TrainState): tf.Tensor4D {
    return tf.tidy(() => {
      let t: tf.Tensor = conv2d(x, this.#p.patch!, this.#p.patchb!, this.config.patchSize, 'valid');
      t = chainBlocks(t, this.#blocks, (u, b) => this.#block(u, b, state));
      return t as tf.Tensor4D;
    });
  }

  // token-wise maths on the [B, h, w, D] map: every op acts on the channel axis
  #block(x: tf.Tensor, b: ActivatorBlock, state: TrainState): tf.Tensor {
    return tf.tidy(() => {
      const n = layerNorm(x, b.nw, b.nb, EPS);
      const u = layerNorm(gelu(linear(n, b.p1, b.p1b)), b.hw, b.hb, EPS);
      const v = layerNorm(linear(n, b.p2, b.p2b), b.hw, b.hb, EPS);
      let r = tf.add(x, linear(tf.mul(u, v), b.p3, b.p3b));
      if (b.f1) {
        const n2 = layerNorm(r, b.nw, b.nb, EPS);
        const p = this.config.dropout;
        r = tf.add(r, dropout(linear(dropout(gelu(linear(n2, b.f1, b.f1b)), p, state), b.f2!, b.f2b), p, state));
      }
      return r;
    });
  }
}

/** Abdullah-88/Activator state dict (train.py wrapper) → our names and layouts. */
export function convertActivatorCheckpoint(official: StateDict): StateDict {
  return convertByRules(official, ACTIVATOR_RULES);
}

const ACTIVATOR_RULES: [RegExp, string, Layout][] = [
  [/^patcher\.weight$/, 'patcher.kernel', 'conv'],
  [/^patcher\.bias$/, 'patcher.bias', 'copy'],
  [/^model\.(\d+)\.norm\.(weight|bias)$/, 'blocks.$1.norm.$2', 'copy'],
  [/^model\.(\d+)\.actgu\.(proj_[123])\.weight$/, 'blocks.$1.actgu.$2.kernel', 'linear'],
  [/^model\.(\d+)\.actgu\.(proj_[123])\.bias$/, 'blocks.$1.actgu.$2.bias', 'copy'],
  [/^model\.(\d+)\.actgu\.norm\.(weight|bias)$/, 'blocks.$1.actgu.norm.$2', 'copy'],
  [/^model\.(\d+)\.ffn\.net\.0\.weight$/, 'blocks.$1.ffn.fc1.kernel', 'linear'],
  [/^model\.(\d+)\.ffn\.net\.0\.bias$/, 'blocks.$1.ffn.fc1.bias', 'copy'],
  [/^model\.(\d+)\.ffn\.net\.3\.weight$/, 'blocks.$1.ffn.fc2.kernel', 'linear'],
  [/^model\.(\d+)\.ffn\.net\.3\.bias$/, 'blocks.$1.ffn.fc2.bias', 'copy'],
  [/^classifier\.weight$/, 'classifier.linear.kernel', 'linear'],
  [/^classifier\.bias$/, 'classifier.linear.bias', 'copy'],
];
