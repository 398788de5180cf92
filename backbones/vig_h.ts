/**
 * Hierarchical ViG (ViG-H, hustvl/ViG `vig_h.py` HierViG; checkpoints `vig_h_{t,s,b}_*.pth`). A four-stage
 * pyramid (strides 4/8/16/32): stem of two 3×3 s2 convs with LN, stages of blocks
 *   x += GLA2D(LN(x));  x += gMLP(LN(x))
 * where GLA2D is ViG's BiGLA + GLI mixer over the raster-flattened map (no SiLUs, no position embedding),
 * gMLP = SwiGLU with hidden = multiple of 32 at or above 8C/3, and 3×3 s2 conv + LN between stages.
 * Layout NHWC, float32; any input size (the stem and down-samplings round up). architectures.md §1.4.
 *
 * In training both residual branches of every block pass through stochastic depth, at rates ramping
 * linearly over all blocks of all stages (linspace(0, dropPath, Σdepths)). `outNorms` gives the
 * detection/segmentation variant `Backbone_HierViG`: an `outnorm{i}` LayerNorm on each stage output and no
 * classifier, so its checkpoints load as they are.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { fanInUniform, normal, ones, Param, ParamStore, zeros } from './_params.ts';
import type { Backbone, FeatureInfo } from './_types.ts';
import { dropPath, dropPathRamp, TrainState, type ForwardOptions } from './layers/drop_path.ts';
import { chainBlocks, conv2d, gelu, layerNorm, linear } from './layers/ops.ts';
import { linearFused } from '../kernels/linear/op.ts';
import { gatedMlpHidden, gatedMlpWeight, GlaMixer } from './vig.ts';
import type { DerivedWeight } from './layers/derived_weight.ts';
import { convertByRules, type Layout } from './weights/convert.ts';
import type { StateDict } from './weights/tensors.ts';

export interface VigHConfig {
  dims: number[];
  depths: number[];
  numHeads: number[];
  expandK: number;
  gateLowRank: number;
  gateNormalizer: number;
  numClasses: number;
  inChans: number;
  /** Stochastic-depth rate of the last block (training only); official recipes: H-T 0.2, H-S 0.3, H-B 0.6. */
  dropPath: number;
  /**
   * Backbone_HierViG (detection/segmentation): LayerNorm `outnorm{i}` (ε 1e-5) on each stage output returned by
   * forwardFeatures, and no classifier (its checkpoints have none), so `forward` is refused.
   */
  outNorms: boolean;
}

export const VIG_H_DEFAULTS: VigHConfig = {
  dims: [96, 192, 384, 768], depths: [2, 2, 5, 2], numHeads: [3, 6, 12, 24], expandK: 0.5, gateLowRank: 16, gateNormalizer: 16, numClasses: 1000, inChans: 3,
  dropPath: 0, outNorms: false,
};

const LN_EPS = 1e-5;

export function gmlpHidden(dim: number): number {
  return 32 * Math.ceil(Math.floor((dim * 4 * 2) / 3) / 32);
}

interface HBlock {
  nw: Param; nb: Param; mixer: GlaMixer; n2w: Param; n2b: Param; fc1: Param; fc1Packed: DerivedWeight | null; fc2: Param; dropPath: number;
}

interface HStage {
  blocks: HBlock[];
  down?: { k: Param; b: Param; nw: Param; nb: Param };
  outNorm?: { w: Param; b: Param };
}

export class VigHModel implements Backbone {
  readonly arch = 'vig_h';
  readonly featureInfo: readonly FeatureInfo[];
  readonly #stem: Record<string, Param>;
  readonly #stages: HStage[] = [];
  readonly #head: Record<string, Param> = {};
  /** Stochastic-depth rate of each block, stages in order (both residual branches of a block share it). */
  readonly dropPathRates: readonly number[];

  constructor(
    readonly config: VigHConfig,
    readonly params: ParamStore,
  ) {
    const c = config;
    const n = c.dims.length;
    if (c.depths.length !== n || c.numHeads.length !== n) throw new GatedError('config', `dims, depths and numHeads must have one entry per stage; got ${n}, ${c.depths.length}, ${c.numHeads.length}`);
    const s = params;
    const d0 = c.dims[0]!;
    this.#stem = {
      c1: s.add('patch_embed.conv1.kernel', [3, 3, c.inChans, d0 / 2], fanInUniform(c.inChans * 9)),
      c1b: s.add('patch_embed.conv1.bias', [d0 / 2], zeros),
      n1w: s.add('patch_embed.norm1.weight', [d0 / 2], ones),
      n1b: s.add('patch_embed.norm1.bias', [d0 / 2], zeros),
      c2: s.add('patch_embed.conv2.kernel', [3, 3, d0 / 2, d0], fanInUniform((d0 / 2) * 9)),
      c2b: s.add('patch_embed.conv2.bias', [d0], zeros),
      n2w: s.add('patch_embed.norm2.weight', [d0], ones),
      n2b: s.add('patch_embed.norm2.bias', [d0], zeros),
    };
    const info: FeatureInfo[] = [];
    const rates = dropPathRamp(c.dropPath, c.depths.reduce((a, d) => a + d, 0));
    let slot = 0;
    this.dropPathRates = rates;
    for (let i = 0; i < n; i++) {
      const C = c.dims[i]!;
      const I = gmlpHidden(C);
      const st: HStage = { blocks: [] };
      for (let j = 0; j < c.depths[i]!; j++) {
        const b = s.scope(`layers.${i}.blocks.${j}`);
        const fc1 = b.add('mlp.fc1.kernel', [C, 2 * I], normal(0.02));
        st.blocks.push({
          nw: b.add('norm.weight', [C], ones), nb: b.add('norm.bias', [C], zeros),
          mixer: new GlaMixer(b.scope('op'), C, c.numHeads[i]!, c.expandK, false, false, c.gateLowRank, c.gateNormalizer),
          n2w: b.add('norm2.weight', [C], ones), n2b: b.add('norm2.bias', [C], zeros),
          fc1, fc1Packed: gatedMlpWeight(fc1, I), fc2: b.add('mlp.fc2.kernel', [I, C], normal(0.02)),
          dropPath: rates[slot++]!,
        });
      }
      if (i < n - 1) {
        const d = s.scope(`layers.${i}.downsample`);
        const O = c.dims[i + 1]!;
        st.down = { k: d.add('conv.kernel', [3, 3, C, O], fanInUniform(C * 9)), b: d.add('conv.bias', [O], zeros), nw: d.add('norm.weight', [O], ones), nb: d.add('norm.bias', [O], zeros) };
      }
      if (c.outNorms) st.outNorm = { w: s.add(`outnorm${i}.weight`, [C], ones), b: s.add(`outnorm${i}.bias`, [C], zeros) };
      this.#stages.push(st);
      info.push({ name: c.outNorms ? `outnorm${i}` : `layers.${i}`, channels: C, reduction: 4 * 2 ** i });
    }
    if (!c.outNorms) {
      const last = c.dims[n - 1]!;
      this.#head.nw = s.add('classifier.norm.weight', [last], ones);
      this.#head.nb = s.add('classifier.norm.bias', [last], zeros);
      if (c.numClasses > 0) {
        this.#head.k = s.add('classifier.head.kernel', [last, c.numClasses], normal(0.02));
        this.#head.b = s.add('classifier.head.bias', [c.numClasses], zeros);
      }
    }
    this.featureInfo = info;
    if (params.materialize) for (const st of this.#stages) for (const b of st.blocks) (b.mixer.prepare(), b.fc1Packed?.get());
  }

  /** Stage outputs (before down-sampling; through outnorm{i} with outNorms), strides 4, 8, 16, 32. */
  forwardFeatures(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D[] {
    const state = new TrainState(opts);
    const outs: tf.Tensor4D[] = [];
    tf.tidy(() => {
      let t = this.#stemForward(x);
      for (const st of this.#stages) {
        t = chainBlocks(t, st.blocks, (u, b) => this.#block(u, b, state));
        outs.push(tf.keep(st.outNorm ? (layerNorm(t, st.outNorm.w, st.outNorm.b, LN_EPS) as tf.Tensor4D) : t));
        if (st.down) t = layerNorm(conv2d(t, st.down.k, st.down.b, 2, 1), st.down.nw, st.down.nb, LN_EPS) as tf.Tensor4D;
      }
    });
    return outs;
  }

  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor2D {
    if (this.config.outNorms) throw new GatedError('config', 'this ViG-H is a feature backbone (outNorms: true, no classifier); use forwardFeatures or attach a head');
    const feats = this.forwardFeatures(x, opts); // kept maps: disposed here, not by a tidy
    const out = tf.tidy(() => {
      const f = tf.mean(layerNorm(feats[feats.length - 1]!, this.#head.nw!, this.#head.nb!, LN_EPS), [1, 2]);
      return (this.#head.k ? linear(f, this.#head.k, this.#head.b) : f) as tf.Tensor2D;
    });
    tf.dispose(feats);
    return out;
  }

  dispose(): void {
    for (const st of this.#stages) for (const b of st.blocks) (b.mixer.dispose(), b.fc1Packed?.dispose());
    this.params.dispose();
  }

  #stemForward(x: tf.Tensor4D): tf.Tensor4D {
    const p = this.#stem;
    let y = conv2d(x, p.c1!, p.c1b!, 2, 1);
    y = gelu(layerNorm(y, p.n1w!, p.n1b!, LN_EPS)) as tf.Tensor4D;
    y = conv2d(y, p.c2!, p.c2b!, 2, 1);
    return layerNorm(y, p.n2w!, p.n2b!, LN_EPS) as tf.Tensor4D;
  }

  #block(x: tf.Tensor4D, b: HBlock, state: TrainState): tf.Tensor4D {
    return tf.tidy(() => {
      // without stochastic depth the residual sums ride in the o_proj and fc2 kernels
      const plain = !state.training || b.dropPath === 0;
      const xn = layerNorm(x, b.nw, b.nb, LN_EPS) as tf.Tensor4D;
      const r = plain
        ? (tf.reshape(b.mixer.call(xn, x), x.shape) as tf.Tensor4D)
        : tf.add(x, dropPath(tf.reshape(b.mixer.call(xn), x.shape), b.dropPath, state));
      const hidden = gatedMlpHidden(layerNorm(r, b.n2w, b.n2b, LN_EPS), b.fc1, b.fc1Packed);
      if (plain) return linearFused(hidden, b.fc2.v, { residual: r }) as tf.Tensor4D;
      return tf.add(r, dropPath(linearFused(hidden, b.fc2.v), b.dropPath, state)) as tf.Tensor4D;
    });
  }
}

/**
 * hustvl/ViG HierViG or Backbone_HierViG state dict (ln2d/channels-first or ln/channels-last) → our names and
 * layouts. `outnorm{i}` keys keep their names; only a model built with outNorms accepts them.
 */
export function convertVigHCheckpoint(official: StateDict): StateDict {
  return convertByRules(official, VIG_H_RULES);
}

const B = String.raw`^layers\.(\d+)\.blocks\.(\d+)\.`;
const VIG_H_RULES: [RegExp, string, Layout][] = [
  [/^patch_embed\.0\.weight$/, 'patch_embed.conv1.kernel', 'conv'],
  [/^patch_embed\.0\.bias$/, 'patch_embed.conv1.bias', 'copy'],
  [/^patch_embed\.2\.(weight|bias)$/, 'patch_embed.norm1.$1', 'copy'],
  [/^patch_embed\.5\.weight$/, 'patch_embed.conv2.kernel', 'conv'],
  [/^patch_embed\.5\.bias$/, 'patch_embed.conv2.bias', 'copy'],
  [/^patch_embed\.7\.(weight|bias)$/, 'patch_embed.norm2.$1', 'copy'],
  [new RegExp(`${B}(norm|norm2)\\.(weight|bias)$`), 'layers.$1.blocks.$2.$3.$4', 'copy'],
  [new RegExp(`${B}op\\.in_proj\\.0\\.weight$`), 'layers.$1.blocks.$2.op.dwconv.kernel', 'dwconv'],
  [new RegExp(`${B}op\\.qkv_proj\\.weight$`), 'layers.$1.blocks.$2.op.qkv.kernel', 'linear'],
  [new RegExp(`${B}op\\.gk_proj\\.0\\.weight$`), 'layers.$1.blocks.$2.op.gate_down.kernel', 'linear'],
  [new RegExp(`${B}op\\.gk_proj\\.1\\.weight$`), 'layers.$1.blocks.$2.op.gate_up.kernel', 'linear'],
  [new RegExp(`${B}op\\.gk_proj\\.1\\.bias$`), 'layers.$1.blocks.$2.op.gate_up.bias', 'copy'],
  [new RegExp(`${B}op\\.g_proj\\.weight$`), 'layers.$1.blocks.$2.op.gli.kernel', 'linear'],
  [new RegExp(`${B}op\\.g_proj\\.bias$`), 'layers.$1.blocks.$2.op.gli.bias', 'copy'],
  [new RegExp(`${B}op\\.(g_norm|l_norm)\\.weight$`), 'layers.$1.blocks.$2.op.$3.weight', 'copy'],
  [new RegExp(`${B}op\\.o_proj\\.weight$`), 'layers.$1.blocks.$2.op.out.kernel', 'linear'],
  [new RegExp(`${B}mlp\\.(fc1|fc2)\\.weight$`), 'layers.$1.blocks.$2.mlp.$3.kernel', 'linear'],
  [/^layers\.(\d+)\.downsample\.1\.weight$/, 'layers.$1.downsample.conv.kernel', 'conv'],
  [/^layers\.(\d+)\.downsample\.1\.bias$/, 'layers.$1.downsample.conv.bias', 'copy'],
  [/^layers\.(\d+)\.downsample\.3\.(weight|bias)$/, 'layers.$1.downsample.norm.$2', 'copy'],
  [/^outnorm(\d+)\.(weight|bias)$/, 'outnorm$1.$2', 'copy'],
  [/^classifier\.norm\.(weight|bias)$/, 'classifier.norm.$1', 'copy'],
  [/^classifier\.head\.weight$/, 'classifier.head.kernel', 'linear'],
  [/^classifier\.head\.bias$/, 'classifier.head.bias', 'copy'],
];
