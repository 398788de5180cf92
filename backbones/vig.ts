/**
 * ViG: Linear-complexity Visual Sequence Learning with Gated Linear Attention (arXiv 2405.18425),
 * plain (DeiT-like) variants. Checkpoints: hustvl/ViG `vig_{t,s,b}_*.pth` (PyTorch state dicts).
 * Layout NHWC, float32. See architectures.md §1.2–1.3.
 *
 * Block: RMSNorm → depthwise 3×3 (SiLU on ViG-T) = L → q, k, v and two low-rank forget gates from L →
 * bidirectional GLA with direction-wise decays, merged (O^f + O^b)/2 → GLI: σ(L·W_G) ⊙ RMSNorm(O) +
 * (1 − σ) ⊙ RMSNorm(L) (SiLU on ViG-T) → o_proj; residual; RMSNorm → SwiGLU MLP; residual.
 * In training, both residual branches of block i pass through stochastic depth at rate
 * linspace(0, dropPath, depth)[i] (one DropPath module per block, drawn afresh at each use, as vig.py).
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { depthwiseConv2dFused } from '../kernels/dwconv/op.ts';
import { biGatedLinearAttention } from '../kernels/gla/op.ts';
import { gliMerge } from '../kernels/gli/op.ts';
import { tokensToHeads } from '../kernels/heads/op.ts';
import { linearFused, packGatedPairs } from '../kernels/linear/op.ts';
import { recordingGradients } from '../kernels/flags.ts';
import { matmulFast } from '../kernels/matmul/op.ts';
import { swigluFused } from '../kernels/swiglu/op.ts';
import { fanInUniform, normal, ones, Param, ParamStore, zeros, type Store } from './_params.ts';
import type { Backbone, FeatureInfo } from './_types.ts';
import { dropPath, dropPathRamp, TrainState, type ForwardOptions } from './layers/drop_path.ts';
import { DerivedWeight } from './layers/derived_weight.ts';
import { chainBlocks, conv2d, freer, layerNorm, linear, rmsNorm, silu } from './layers/ops.ts';
import { resizeSeparable, torchBicubicMatrix } from './layers/resize.ts';
import { convertByRules } from './weights/convert.ts';
import type { StateDict } from './weights/tensors.ts';

export interface VigConfig {
  embedDim: number;
  depth: number;
  numHeads: number;
  /** Key width K = expandK·C (d_k = K/heads). */
  expandK: number;
  /** Training resolution; the position table has ((imgSize − patch)/patch + 1)² entries. */
  imgSize: number;
  patchSize: number;
  /** SiLU after the depthwise conv and before o_proj (ViG-T only). */
  tinyActs: boolean;
  /** SwiGLU hidden width; default: multiple of 256 at or above 8C/3. */
  mlpHidden?: number;
  gateLowRank: number;
  gateNormalizer: number;
  numClasses: number;
  inChans: number;
  /** Stochastic-depth rate of the last block (training only); the official ViG-S/B recipes use 0.2/0.5. */
  dropPath: number;
}

export const VIG_DEFAULTS: VigConfig = {
  embedDim: 192, depth: 12, numHeads: 3, expandK: 0.5, imgSize: 224, patchSize: 16, tinyActs: false,
  gateLowRank: 16, gateNormalizer: 16, numClasses: 1000, inChans: 3, dropPath: 0,
};

const RMS_EPS = 1e-6;
const LN_EPS = 1e-5;

export function vigMlpHidden(c: VigConfig): number {
  return c.mlpHidden ?? 256 * Math.ceil(Math.floor((c.embedDim * 4 * 2) / 3) / 256);
}

/** Token grid after the v2 patch embed: conv k(p/2+1) s(p/2) p1, then conv k3 s2 p1. */
export function vigTokenGrid(h: number, patchSize: number): number {
  const s = patchSize / 2;
  const h1 = Math.floor((h + 2 - (s + 1)) / s) + 1;
  return Math.floor((h1 + 2 - 3) / 2) + 1;
}

/**
 * The gated MLP's tile-ordered up-projection when its hidden width allows (a multiple of 64), built once for
 * inference, where SiLU(gate)·value is then written by the matmul itself. With `norm` (an RMSNorm weight) the
 * norm's weight is folded into the rows, and the matmul divides by each row's root mean square itself.
 */
export function gatedMlpWeight(gateUp: Param, hidden: number, norm?: Param): DerivedWeight | null {
  if (hidden % 64 !== 0) return null;
  if (!norm) return new DerivedWeight([gateUp], ([w]) => packGatedPairs(w!));
  return new DerivedWeight([gateUp, norm], ([w, g]) => packGatedPairs(tf.mul(w!, tf.reshape(g!, [-1, 1]))));
}

/**
 * SiLU(x'·W_gate) ⊙ (x'·W_value), x' = x or RMSNorm(x; norm): one gated matmul in inference, norm + matmul + SwiGLU
 * kernels while gradients are recorded.
 */
export function gatedMlpHidden(x: tf.Tensor, gateUp: Param, packed: DerivedWeight | null, norm?: { weight: Param; eps: number }): tf.Tensor {
  if (packed && !recordingGradients()) return linearFused(x, packed.get(), { gated: true, ...(norm ? { rmsNormEps: norm.eps } : {}) });
  return swigluFused(linearFused(norm ? rmsNorm(x, norm.weight, norm.eps) : x, gateUp.v));
}

/**
 * Inference: the GLI gate logits are copied out of the packed projection when it is at least this large (bytes),
 * so the projection can be freed before the BiGLA runs (below it, the extra kernel costs more than the memory).
 */
export const glaMixerTuning = { gateCopyFromBytes: 4 * 2 ** 20 };

/** GLA block pieces shared with ViG-H: projections from the local branch, BiGLA, and GLI. */
export class GlaMixer {
  readonly dw: Param;
  readonly qkv: Param;
  readonly gateDown: Param;
  readonly gateUp: Param;
  readonly gateUpBias: Param;
  readonly gli: Param;
  readonly gliBias: Param;
  readonly gNorm: Param;
  readonly lNorm: Param;
  readonly out: Param;
  readonly keyDim: number;
  readonly dk: number;
  readonly dv: number;
  readonly #packed: DerivedWeight;
  readonly #packedBias: DerivedWeight;

  constructor(
    s: Store,
    readonly dim: number,
    readonly heads: number,
    expandK: number,
    readonly actInConv: boolean,
    readonly outAct: boolean,
    lowRank: number,
    readonly gateNormalizer: number,
  ) {
    this.keyDim = Math.floor(dim * expandK);
    if (this.keyDim % heads || dim % heads) throw new GatedError('config', `width ${dim} (keys ${this.keyDim}) is not divisible by ${heads} heads`);
    this.dk = this.keyDim / heads;
    this.dv = dim / heads;
    const xav = (i: number, o: number) => ({ kind: 'uniform', bound: 2 ** -2.5 * Math.sqrt(6 / (i + o)) }) as const;
    this.dw = s.add('dwconv.kernel', [3, 3, dim, 1], xav(9, 9 * dim));
    this.qkv = s.add('qkv.kernel', [dim, 2 * this.keyDim + dim], xav(dim, 2 * this.keyDim + dim));
    this.gateDown = s.add('gate_down.kernel', [dim, lowRank], xav(dim, lowRank));
    this.gateUp = s.add('gate_up.kernel', [lowRank, 2 * this.keyDim], xav(lowRank, 2 * this.keyDim));
    this.gateUpBias = s.add('gate_up.bias', [2 * this.keyDim], zeros);
    this.gli = s.add('gli.kernel', [dim, dim], xav(dim, dim));
    this.gliBias = s.add('gli.bias', [dim], zeros);
    this.gNorm = s.add('g_norm.weight', [this.dv], ones);
    this.lNorm = s.add('l_norm.weight', [this.dv], ones);
    this.out = s.add('out.kernel', [dim, dim], xav(dim, dim));
    const K = this.keyDim;
    this.#packed = new DerivedWeight([this.qkv, this.gateDown, this.gateUp, this.gli], ([qkv, down, up, gli]) =>
      tf.concat([qkv!, matmulFast(down as tf.Tensor2D, up as tf.Tensor2D), gli!], 1),
    );
    this.#packedBias = new DerivedWeight([this.gateUpBias, this.gliBias], ([up, gli]) => tf.concat([tf.fill([2 * K + dim], 0), up!, gli!]));
  }

  /**
   * x: normalized map [B, H, W, C] → [B, H·W, C] (plus `residual`, [B, H, W, C], when given: the block's
   * residual sum in the same kernel as o_proj).
   * One packed projection of L gives, side by side, q | k | v | forward and backward gate logits | GLI gate
   * logits (the low-rank gate as L·(W_g1·W_g2), the same map reassociated); the heads are cut out of it by
   * one kernel each, and the GLI, the head merge and the SiLU are one kernel.
   * Without a gradient tape each intermediate is freed once its last reader has run, instead of when the whole
   * call ends (the projection, the heads and the BiGLA output of a 4096-token map are 27 MiB); `consumeInput`
   * frees x as soon as the depthwise conv has read it (the caller's tensor, so only when it says so).
   */
  call(x: tf.Tensor4D, residual?: tf.Tensor4D, opts: { consumeInput?: boolean } = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, H, W, C] = x.shape;
      const N = H * W;
      const K = this.keyDim;
      const done = freer();
      const local = depthwiseConv2dFused(x, this.dw.v as tf.Tensor4D, { activation: this.actInConv ? 'silu' : 'linear' });
      if (opts.consumeInput) done(x);
      const L = tf.reshape(local, [B, N, C]) as tf.Tensor3D;
      done(local); // L shares its data (the engine counts each view's bytes)
      const P = linearFused(L, this.#packed.get(), { bias: this.#packedBias.get() }) as tf.Tensor3D; // [B, N, 4K + 2C]
      const heads = (begin: number, size: number, logSigmoidScale = 0) => tokensToHeads(P, { begin, size, heads: this.heads, logSigmoidScale });
      const g = this.gateNormalizer;
      const qkvg = [heads(0, K), heads(K, K), heads(2 * K, C), heads(2 * K + C, K, g), heads(3 * K + C, K, g)] as const;
      // a large projection is not kept through the BiGLA for its last C columns: they are copied out (one more
      // kernel) and the rest freed (at 4096 tokens, 12 MiB instead of 3 MiB alive next to the BiGLA's work)
      const copyGate = !recordingGradients() && P.size * 4 >= glaMixerTuning.gateCopyFromBytes;
      const gate = copyGate ? (tf.slice(P, [0, 0, 4 * K + C], [B, N, C]) as tf.Tensor3D) : P;
      if (copyGate) done(P);
      const o = biGatedLinearAttention(...qkvg);
      done(...qkvg);
      const m = gliMerge(o, L, gate, this.gNorm.v as tf.Tensor1D, this.lNorm.v as tf.Tensor1D, { gateOffset: copyGate ? 0 : 4 * K + C, eps: RMS_EPS, activation: this.outAct ? 'silu' : 'linear' });
      done(o, gate, L);
      return linearFused(m, this.out.v, residual ? { residual: tf.reshape(residual, [B, N, C]) } : {}) as tf.Tensor3D;
    });
  }

  /**
   * Builds the packed projection now, so a model holds the same number of tensors before and after its first
   * forward pass (a reassigned weight later swaps in a rebuilt one).
   */
  prepare(): void {
    this.#packed.get();
    this.#packedBias.get();
  }

  /** The parameters the packed projection is built from (read by nothing else outside a gradient tape). */
  packedSources(): Param[] {
    return [...this.#packed.sources, ...this.#packedBias.sources];
  }

  /** Frees the packed projection kept for inference (the parameters belong to the store). */
  dispose(): void {
    this.#packed.dispose();
    this.#packedBias.dispose();
  }
}

interface VigBlock {
  attnNorm: Param;
  mixer: GlaMixer;
  mlpNorm: Param;
  gateUp: Param;
  /** mlpNorm's weight ⊙ gateUp in the gated matmul's tile order (hidden width a multiple of 64), for inference. */
  packedUp: DerivedWeight | null;
  down: Param;
  dropPath: number;
}

export class VigModel implements Backbone {
  readonly arch = 'vig';
  readonly featureInfo: readonly FeatureInfo[];
  readonly #p: Record<string, Param>;
  readonly #blocks: VigBlock[] = [];
  readonly posGrid: number;
  /** Stochastic-depth rate of each block (both of its residual branches). */
  readonly dropPathRates: readonly number[];

  constructor(
    readonly config: VigConfig,
    readonly params: ParamStore,
  ) {
    const c = config;
    const C = c.embedDim;
    const s = params;
    const k1 = c.patchSize / 2 + 1;
    this.posGrid = Math.floor((c.imgSize - c.patchSize) / c.patchSize) + 1;
    const I = vigMlpHidden(c);
    const rates = dropPathRamp(c.dropPath, c.depth);
    this.dropPathRates = rates;
    this.#p = {
      conv1: s.add('patch_embed.conv1.kernel', [k1, k1, c.inChans, C / 2], fanInUniform(c.inChans * k1 * k1)),
      conv1b: s.add('patch_embed.conv1.bias', [C / 2], zeros),
      norm1w: s.add('patch_embed.norm1.weight', [C / 2], ones),
      norm1b: s.add('patch_embed.norm1.bias', [C / 2], zeros),
      conv2: s.add('patch_embed.conv2.kernel', [3, 3, C / 2, C], fanInUniform((C / 2) * 9)),
      conv2b: s.add('patch_embed.conv2.bias', [C], zeros),
      norm2w: s.add('patch_embed.norm2.weight', [C], ones),
      norm2b: s.add('patch_embed.norm2.bias', [C], zeros),
      pos: s.add('pos_embed', [1, this.posGrid * this.posGrid, C], normal(0.02)),
    };
    for (let i = 0; i < c.depth; i++) {
      const b = s.scope(`blocks.${i}`);
      const attnNorm = b.add('attn_norm.weight', [C], ones);
      const mixer = new GlaMixer(b.scope('attn'), C, c.numHeads, c.expandK, c.tinyActs, c.tinyActs, c.gateLowRank, c.gateNormalizer);
      const mlpNorm = b.add('mlp_norm.weight', [C], ones);
      const gateUp = b.add('mlp.gate_up.kernel', [C, 2 * I], normal(0.02));
      this.#blocks.push({
        attnNorm,
        mixer,
        mlpNorm,
        gateUp,
        packedUp: gatedMlpWeight(gateUp, I, mlpNorm),
        down: b.add('mlp.down.kernel', [I, C], normal(0.02)),
        dropPath: rates[i]!,
      });
    }
    this.#p.norm = s.add('norm.weight', [C], ones);
    if (c.numClasses > 0) {
      this.#p.head = s.add('head.kernel', [C, c.numClasses], normal(0.02));
      this.#p.headb = s.add('head.bias', [c.numClasses], zeros);
    }
    this.featureInfo = [{ name: 'norm', channels: C, reduction: 16 }];
    if (params.materialize) for (const b of this.#blocks) (b.mixer.prepare(), b.packedUp?.get());
  }

  /**
   * Token map after the stem, with the (resized) position table added: [B, h, w, C]. `consumeInput` (no gradient
   * tape): x is freed as soon as the first convolution has read it.
   */
  embed(x: tf.Tensor4D, opts: { consumeInput?: boolean } = {}): tf.Tensor4D {
    return tf.tidy(() => {
      const p = this.#p;
      const stride = this.config.patchSize / 2;
      // without a tape each stage frees the one before it (at 1024² the first stage's maps are 6 MiB each)
      const done = freer();
      const c1 = conv2d(x, p.conv1!, p.conv1b!, stride, 1);
      if (opts.consumeInput) done(x);
      const n1 = layerNorm(c1, p.norm1w!, p.norm1b!, LN_EPS);
      done(c1);
      const a1 = silu(n1) as tf.Tensor4D;
      done(n1);
      const c2 = conv2d(a1, p.conv2!, p.conv2b!, 2, 1);
      done(a1);
      const n2 = layerNorm(c2, p.norm2w!, p.norm2b!, LN_EPS) as tf.Tensor4D;
      done(c2);
      return tf.add(n2, this.positions(n2.shape[1], n2.shape[2])) as tf.Tensor4D;
    });
  }

  /** The position table as a [1, h, w, C] map, bicubic-resized (PyTorch semantics) when the grid differs. */
  positions(h: number, w: number): tf.Tensor4D {
    return tf.tidy(() => {
      const g = this.posGrid;
      const pos = tf.reshape(this.#p.pos!.v, [1, g, g, this.config.embedDim]) as tf.Tensor4D;
      if (h === g && w === g) return pos;
      return resizeSeparable(pos, torchBicubicMatrix(g, h), torchBicubicMatrix(g, w));
    });
  }

  /** Output of each block (before the final norm) as maps; `indices` default: all. */
  forwardIntermediates(x: tf.Tensor4D, indices?: readonly number[], opts: ForwardOptions = {}): tf.Tensor4D[] {
    const want = new Set(indices ?? this.#blocks.map((_, i) => i));
    const outs: tf.Tensor4D[] = [];
    const state = new TrainState(opts);
    tf.tidy(() => {
      let t = this.embed(x);
      this.#blocks.forEach((blk, i) => {
        t = this.#block(t, blk, state);
        if (want.has(i)) outs.push(tf.keep(t));
      });
    });
    return outs;
  }

  forwardFeatures(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D[] {
    return [this.#features(x, new TrainState(opts))];
  }

  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const f = tf.mean(this.#features(x, new TrainState(opts)), [1, 2]);
      if (!this.#p.head) return f as tf.Tensor2D;
      return linear(f, this.#p.head, this.#p.headb) as tf.Tensor2D;
    });
  }

  /**
   * For a model that will only run inference: builds the packed projections and moves the parameters they are
   * built from (q/k/v, gate, GLI and MLP up-projection kernels, their biases, the MLP norm folded into the
   * up-projection) to host memory, so the device holds one copy of each weight: ViG-T 22.2 + 15.8 → 8.0 + 15.8
   * MiB. Outputs are unchanged. Training, a forward under a gradient tape, `params.variables()` or a load
   * brings them back (as new variables: do not call this on a model an optimizer is training).
   */
  async inferenceOnly(): Promise<void> {
    const names = new Set<string>();
    for (const b of this.#blocks) {
      b.mixer.prepare();
      for (const p of b.mixer.packedSources()) names.add(p.name);
      if (b.packedUp) {
        b.packedUp.get();
        for (const p of b.packedUp.sources) names.add(p.name);
      }
    }
    await this.params.offload([...names]);
  }

  dispose(): void {
    for (const b of this.#blocks) (b.mixer.dispose(), b.packedUp?.dispose());
    this.params.dispose();
  }

  #features(x: tf.Tensor4D, state: TrainState): tf.Tensor4D {
    return tf.tidy(() => {
      const t = chainBlocks(this.embed(x, { consumeInput: state.consumeInput }), this.#blocks, (u, blk) => this.#block(u, blk, state), { ownsInput: true });
      return rmsNorm(t, this.#p.norm!, RMS_EPS) as tf.Tensor4D;
    });
  }

  #block(x: tf.Tensor4D, blk: VigBlock, state: TrainState): tf.Tensor4D {
    return tf.tidy(() => {
      const [B, H, W, C] = x.shape;
      // without stochastic depth the residual sums ride in the o_proj and down-projection kernels
      const plain = !state.training || blk.dropPath === 0;
      const done = freer();
      const xn = rmsNorm(x, blk.attnNorm, RMS_EPS) as tf.Tensor4D;
      // xn is read only by the mixer's depthwise conv: the mixer frees it there (no tape)
      const y = blk.mixer.call(xn, plain ? x : undefined, { consumeInput: true });
      const r = plain ? (tf.reshape(y, [B, H, W, C]) as tf.Tensor4D) : tf.add(x, dropPath(tf.reshape(y, [B, H, W, C]), blk.dropPath, state));
      done(y); // a view of r, or read
      const hidden = gatedMlpHidden(r, blk.gateUp, blk.packedUp, { weight: blk.mlpNorm, eps: RMS_EPS });
      if (plain) return linearFused(hidden, blk.down.v, { residual: r }) as tf.Tensor4D;
      return tf.add(r, dropPath(linearFused(hidden, blk.down.v), blk.dropPath, state)) as tf.Tensor4D;
    });
  }
}

/** hustvl/ViG plain-model state dict → our names and TF.js layouts. */
export function convertVigCheckpoint(official: StateDict): StateDict {
  return convertByRules(official, VIG_RULES);
}

const VIG_RULES: [RegExp, string, 'copy' | 'linear' | 'conv' | 'dwconv'][] = [
  [/^patch_embed\.proj\.0\.weight$/, 'patch_embed.conv1.kernel', 'conv'],
  [/^patch_embed\.proj\.0\.bias$/, 'patch_embed.conv1.bias', 'copy'],
  [/^patch_embed\.proj\.1\.(weight|bias)$/, 'patch_embed.norm1.$1', 'copy'],
  [/^patch_embed\.proj\.3\.weight$/, 'patch_embed.conv2.kernel', 'conv'],
  [/^patch_embed\.proj\.3\.bias$/, 'patch_embed.conv2.bias', 'copy'],
  [/^patch_embed\.proj\.4\.(weight|bias)$/, 'patch_embed.norm2.$1', 'copy'],
  [/^pos_embed$/, 'pos_embed', 'copy'],
  [/^blocks\.(\d+)\.(attn_norm|mlp_norm)\.weight$/, 'blocks.$1.$2.weight', 'copy'],
  [/^blocks\.(\d+)\.attn\.in_proj\.0\.weight$/, 'blocks.$1.attn.dwconv.kernel', 'dwconv'],
  [/^blocks\.(\d+)\.attn\.qkv_proj\.weight$/, 'blocks.$1.attn.qkv.kernel', 'linear'],
  [/^blocks\.(\d+)\.attn\.gk_proj\.0\.weight$/, 'blocks.$1.attn.gate_down.kernel', 'linear'],
  [/^blocks\.(\d+)\.attn\.gk_proj\.1\.weight$/, 'blocks.$1.attn.gate_up.kernel', 'linear'],
  [/^blocks\.(\d+)\.attn\.gk_proj\.1\.bias$/, 'blocks.$1.attn.gate_up.bias', 'copy'],
  [/^blocks\.(\d+)\.attn\.g_proj\.weight$/, 'blocks.$1.attn.gli.kernel', 'linear'],
  [/^blocks\.(\d+)\.attn\.g_proj\.bias$/, 'blocks.$1.attn.gli.bias', 'copy'],
  [/^blocks\.(\d+)\.attn\.(g_norm|l_norm)\.weight$/, 'blocks.$1.attn.$2.weight', 'copy'],
  [/^blocks\.(\d+)\.attn\.o_proj\.weight$/, 'blocks.$1.attn.out.kernel', 'linear'],
  [/^blocks\.(\d+)\.mlp\.gate_proj\.weight$/, 'blocks.$1.mlp.gate_up.kernel', 'linear'],
  [/^blocks\.(\d+)\.mlp\.down_proj\.weight$/, 'blocks.$1.mlp.down.kernel', 'linear'],
  [/^norm\.weight$/, 'norm.weight', 'copy'],
  [/^head\.weight$/, 'head.kernel', 'linear'],
  [/^head\.bias$/, 'head.bias', 'copy'],
];
