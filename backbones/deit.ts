/**
 * DeiT (Touvron et al., arXiv 2012.12877): the softmax-attention ViT baseline that ViG is compared with.
 * timm `VisionTransformer` layout (class token, learned position table, pre-norm blocks, LN eps 1e-6,
 * exact GELU); checkpoints are timm state dicts (`deit_{tiny,small}_patch16_224`). NHWC, float32.
 * The position table is bicubic-resized (PyTorch semantics) for other input sizes; attention is
 * quadratic in the token count, which is the point of the comparison. In training, both residual branches
 * of block i pass through stochastic depth at rate linspace(0, dropPath, depth)[i] (timm; DeiT trains with 0.1).
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { fanInUniform, normal, ones, Param, ParamStore, zeros } from './_params.ts';
import type { Backbone, FeatureInfo } from './_types.ts';
import { dropPath, dropPathRamp, TrainState, type ForwardOptions } from './layers/drop_path.ts';
import { chainBlocks, conv2d, gelu, layerNorm, linear } from './layers/ops.ts';
import { resizeSeparable, torchBicubicMatrix } from './layers/resize.ts';
import { convertByRules, type Layout } from './weights/convert.ts';
import type { StateDict } from './weights/tensors.ts';

export interface DeitConfig {
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  patchSize: number;
  imgSize: number;
  numClasses: number;
  inChans: number;
  /** Stochastic-depth rate of the last block (training only); DeiT's recipe uses 0.1. */
  dropPath: number;
}

export const DEIT_DEFAULTS: DeitConfig = { embedDim: 192, depth: 12, numHeads: 3, mlpRatio: 4, patchSize: 16, imgSize: 224, numClasses: 1000, inChans: 3, dropPath: 0 };

const EPS = 1e-6;

interface DeitBlock {
  n1w: Param; n1b: Param; qkv: Param; qkvb: Param; proj: Param; projb: Param;
  n2w: Param; n2b: Param; fc1: Param; fc1b: Param; fc2: Param; fc2b: Param; dropPath: number;
}

export class DeitModel implements Backbone {
  readonly arch = 'deit';
  readonly featureInfo: readonly FeatureInfo[];
  readonly #p: Record<string, Param>;
  readonly #blocks: DeitBlock[] = [];
  readonly grid: number;
  /** Stochastic-depth rate of each block (both residual branches). */
  readonly dropPathRates: readonly number[];

  constructor(
    readonly config: DeitConfig,
    readonly params: ParamStore,
  ) {
    const c = config;
    const C = c.embedDim;
    if (C % c.numHeads) throw new GatedError('config', `embedDim ${C} is not divisible by ${c.numHeads} heads`);
    this.grid = Math.floor(c.imgSize / c.patchSize);
    const s = params;
    const P = c.patchSize;
    const H = Math.round(C * c.mlpRatio);
    const rates = dropPathRamp(c.dropPath, c.depth);
    this.dropPathRates = rates;
    this.#p = {
      patch: s.add('patch_embed.kernel', [P, P, c.inChans, C], fanInUniform(c.inChans * P * P)),
      patchb: s.add('patch_embed.bias', [C], zeros),
      cls: s.add('cls_token', [1, 1, C], normal(1e-6)),
      pos: s.add('pos_embed', [1, 1 + this.grid * this.grid, C], normal(0.02)),
    };
    for (let i = 0; i < c.depth; i++) {
      const b = s.scope(`blocks.${i}`);
      this.#blocks.push({
        n1w: b.add('norm1.weight', [C], ones), n1b: b.add('norm1.bias', [C], zeros),
        qkv: b.add('attn.qkv.kernel', [C, 3 * C], normal(0.02)), qkvb: b.add('attn.qkv.bias', [3 * C], zeros),
        proj: b.add('attn.proj.kernel', [C, C], normal(0.02)), projb: b.add('attn.proj.bias', [C], zeros),
        n2w: b.add('norm2.weight', [C], ones), n2b: b.add('norm2.bias', [C], zeros),
        fc1: b.add('mlp.fc1.kernel', [C, H], normal(0.02)), fc1b: b.add('mlp.fc1.bias', [H], zeros),
        fc2: b.add('mlp.fc2.kernel', [H, C], normal(0.02)), fc2b: b.add('mlp.fc2.bias', [C], zeros),
        dropPath: rates[i]!,
      });
    }
    this.#p.normw = s.add('norm.weight', [C], ones);
    this.#p.normb = s.add('norm.bias', [C], zeros);
    if (c.numClasses > 0) {
      this.#p.head = s.add('head.kernel', [C, c.numClasses], normal(0.02));
      this.#p.headb = s.add('head.bias', [c.numClasses], zeros);
    }
    this.featureInfo = [{ name: 'norm', channels: C, reduction: P }];
  }

  /** Final normalized tokens [B, 1 + h·w, C] and the patch grid. */
  tokens(x: tf.Tensor4D, opts: ForwardOptions = {}): { t: tf.Tensor3D; h: number; w: number } {
    const c = this.config;
    const state = new TrainState(opts);
    const C = c.embedDim;
    let h = 0;
    let w = 0;
    const t = tf.tidy(() => {
      const p = this.#p;
      const e = conv2d(x, p.patch!, p.patchb!, c.patchSize, 'valid');
      [, h, w] = e.shape;
      const B = e.shape[0];
      const g = this.grid;
      const posCls = tf.slice(p.pos!.v, [0, 0, 0], [1, 1, C]);
      let posGrid = tf.reshape(tf.slice(p.pos!.v, [0, 1, 0], [1, g * g, C]), [1, g, g, C]) as tf.Tensor4D;
      if (h !== g || w !== g) posGrid = resizeSeparable(posGrid, torchBicubicMatrix(g, h), torchBicubicMatrix(g, w));
      const pos = tf.concat([posCls, tf.reshape(posGrid, [1, h * w, C])], 1);
      let z: tf.Tensor = tf.add(tf.concat([tf.tile(p.cls!.v, [B, 1, 1]), tf.reshape(e, [B, h * w, C])], 1), pos);
      z = chainBlocks(z as tf.Tensor3D, this.#blocks, (u, blk) => this.#block(u, blk, state));
      return layerNorm(z, p.normw!, p.normb!, EPS) as tf.Tensor3D;
    });
    return { t, h, w };
  }

  forwardFeatures(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D[] {
    const { t, h, w } = this.tokens(x, opts);
    const out = tf.tidy(() => tf.reshape(tf.slice(t, [0, 1, 0], [-1, h * w, -1]), [t.shape[0], h, w, this.config.embedDim]) as tf.Tensor4D);
    t.dispose();
    return [out];
  }

  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor2D {
    const { t } = this.tokens(x, opts);
    const out = tf.tidy(() => {
      const cls = tf.reshape(tf.slice(t, [0, 0, 0], [-1, 1, -1]), [t.shape[0], this.config.embedDim]);
      return (this.#p.head ? linear(cls, this.#p.head, this.#p.headb) : cls) as tf.Tensor2D;
    });
    t.dispose();
    return out;
  }

  dispose(): void {
    this.params.dispose();
  }

  #block(x: tf.Tensor3D, b: DeitBlock, state: TrainState): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, N, C] = x.shape;
      const h = this.config.numHeads;
      const d = C / h;
      const qkv = tf.transpose(tf.reshape(linear(layerNorm(x, b.n1w, b.n1b, EPS), b.qkv, b.qkvb), [B, N, 3, h, d]), [2, 0, 3, 1, 4]);
      const [q, k, v] = tf.unstack(qkv, 0) as tf.Tensor4D[];
      const o = tf.reshape(tf.transpose(attention(q!, k!, v!, d ** -0.5), [0, 2, 1, 3]), [B, N, C]);
      const r = tf.add(x, dropPath(linear(o, b.proj, b.projb), b.dropPath, state));
      const m = linear(gelu(linear(layerNorm(r, b.n2w, b.n2b, EPS), b.fc1, b.fc1b)), b.fc2, b.fc2b);
      return tf.add(r, dropPath(m, b.dropPath, state)) as tf.Tensor3D;
    });
  }
}

/** timm VisionTransformer/DeiT state dict → our names and layouts. */
export function convertDeitCheckpoint(official: StateDict): StateDict {
  return convertByRules(official, DEIT_RULES);
}

const DEIT_RULES: [RegExp, string, Layout][] = [
  [/^patch_embed\.proj\.weight$/, 'patch_embed.kernel', 'conv'],
  [/^patch_embed\.proj\.bias$/, 'patch_embed.bias', 'copy'],
  [/^(cls_token|pos_embed)$/, '$1', 'copy'],
  [/^blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)$/, 'blocks.$1.$2.$3', 'copy'],
  [/^blocks\.(\d+)\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.weight$/, 'blocks.$1.$2.kernel', 'linear'],
  [/^blocks\.(\d+)\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.bias$/, 'blocks.$1.$2.bias', 'copy'],
  [/^norm\.(weight|bias)$/, 'norm.$1', 'copy'],
  [/^head\.weight$/, 'head.kernel', 'linear'],
  [/^head\.bias$/, 'head.bias', 'copy'],
];

/** Score elements one attention call may hold: 256 MiB of float32, well under WebGPU's 2 GiB binding limit. */
export const MAX_SCORE_ELEMENTS = 2 ** 26;

/**
 * softmax(q kᵀ · scale) v over [B, h, N, d]. Above MAX_SCORE_ELEMENTS the queries go in row blocks (each row's
 * softmax is independent, so the result is the same): a single [B, h, N, N] score tensor at 2048² input
 * (16384 tokens) would be 3 GiB, beyond what one WebGPU storage binding can address.
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number, maxScores = MAX_SCORE_ELEMENTS): tf.Tensor4D {
  const [B, h, N] = q.shape;
  const rows = Math.max(1, Math.floor(maxScores / (B * h * k.shape[2])));
  const one = (qi: tf.Tensor4D): tf.Tensor4D => tf.matMul(tf.softmax(tf.mul(tf.matMul(qi, k, false, true), scale)) as tf.Tensor4D, v);
  if (rows >= N) return one(q);
  const parts: tf.Tensor4D[] = [];
  for (let r0 = 0; r0 < N; r0 += rows) parts.push(tf.tidy(() => one(tf.slice(q, [0, 0, r0, 0], [-1, -1, Math.min(rows, N - r0), -1]) as tf.Tensor4D)));
  const out = tf.concat(parts, 2) as tf.Tensor4D;
  tf.dispose(parts);
  return out;
}
