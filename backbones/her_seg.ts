/**
 * HER-Seg (arXiv 2504.06205; v1 "HRMedSeg"; xq141839/HER-Seg `model.py` MHRMedSeg, `SAM/LGViT.py`,
 * `SAM/ecm_decoder.py`, `SAM/transformer.py`, `SAM/prompt_encoder.py`). NHWC, float32.
 *
 *   CE-Encoder (LGViT): patch conv 16/16 → 2 MBConv (expand 2, BN, exact GELU after the residual add) →
 *     10 LGViT blocks at constant 1/16 resolution and width C: x += W_o((DLA(LN x)) ⊙ SiLU(W_a LN x));
 *     x += MLP(LN x). DLA: q, k = ELU(W_qk x)+1; v = W_down SiLU(W_up x) (gate #1); 2-D RoPE on q, k
 *     (rows on the first half of the channel pairs, columns on the second); y = (q_rot · k_rotᵀv/N) /
 *     (q · mean k + 1e-6) per head; + LePE (depthwise 3×3 with bias on v).
 *   Neck: 1×1 C→256 → LN2d → 3×3 256→256 → LN2d (ε 1e-6, no conv biases).
 *   ME-Decoder: SAM's two-way transformer (depth 2, 8 heads, MLP 256, token→image/image→token
 *     attention at width 128) over 4 output tokens and the image tokens (+ no-mask embedding, random-Fourier
 *     position encoding); ×4 upscaling by two 2×2 transposed convs; the hypernetwork MLP 0 applied to the
 *     IoU-token slot (as released) gives one low-res mask; bilinear (half-pixel) up to the input size.
 *
 * The released code fixes the input at 1024²; here any size that is a multiple of 16 works (the RoPE table
 * and the decoder's position encoding are built for the token grid). BatchNorm runs in inference mode with
 * the checkpoint's running statistics (buffers). Parity with the official code: not verified yet.
 * In training, both residual branches of each LGViT block pass through stochastic depth at rates
 * linspace(0, dropPath, Σdepths) indexed by block position, so the MBConv slots take the first (unused)
 * rates, as LGViT.py does.
 *
 * `recompute: true` trades one more forward pass per training step for memory: every MBConv block, both halves
 * of every LGViT block, the neck, each two-way decoder layer, the final attention, both upscaling stages and the
 * mask product run as recomputed segments (layers/recompute.ts), so a gradient pass keeps only the segments'
 * inputs plus one segment's activations at a time. The outputs are the same, the gradients the same up to the
 * order of floating-point sums; inference (no gradient tape) is unaffected.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { depthwiseConv2dFused } from '../kernels/dwconv/op.ts';
import { linearAttention } from '../kernels/linear_attention/op.ts';
import { fanInUniform, normal, ones, Param, ParamStore, zeros, type ScopedStore } from './_params.ts';
import type { Backbone, FeatureInfo } from './_types.ts';
import { dropPath, dropPathRamp, TrainState, type ForwardOptions } from './layers/drop_path.ts';
import { conv2d, gelu, layerNorm, linear, silu } from './layers/ops.ts';
import { recompute, type Segment } from './layers/recompute.ts';
import { toTf } from './weights/convert.ts';
import type { StateDict } from './weights/tensors.ts';

export interface HerSegConfig {
  embedDim: number;
  patchSize: number;
  /** Depths per stage: stage 0 is MBConv, the rest are LGViT blocks (all at the patch resolution). */
  depths: number[];
  numHeads: number[];
  mlpRatio: number;
  /** Transformer width of the neck output and the decoder. */
  decoderDim: number;
  decoderDepth: number;
  decoderHeads: number;
  decoderMlpDim: number;
  numMaskTokens: number;
  maskInChans: number;
  inChans: number;
  /** Stochastic-depth rate of the last LGViT block (training only); the released model uses 0.1. */
  dropPath: number;
  /** Recompute block activations in the backward pass instead of keeping them (training memory; same results). */
  recompute: boolean;
}

export const HER_SEG_DEFAULTS: HerSegConfig = {
  embedDim: 96, patchSize: 16, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], mlpRatio: 2,
  decoderDim: 256, decoderDepth: 2, decoderHeads: 8, decoderMlpDim: 256, numMaskTokens: 3, maskInChans: 16, inChans: 3, dropPath: 0,
  recompute: false,
};

const BN_EPS = 1e-5;
const LN_EPS = 1e-5;
const LN2D_EPS = 1e-6;

interface Lin { k: Param; b: Param | null }
interface Bn { w: Param; b: Param; mean: Param; varc: Param }
interface MbConv { c1: Param; bn1: Bn; c2: Param; bn2: Bn; c3: Param; bn3: Bn }
interface LgBlock { n1w: Param; n1b: Param; act: Lin; qk: Lin; lepe: Param; lepeb: Param; up: Lin; down: Lin; out: Lin; n2w: Param; n2b: Param; fc1: Lin; fc2: Lin; heads: number; dropPath: number }
interface Attn { q: Lin; k: Lin; v: Lin; o: Lin; heads: number }
interface TwoWayLayer { self: Attn; n1: [Param, Param]; t2i: Attn; n2: [Param, Param]; lin1: Lin; lin2: Lin; n3: [Param, Param]; n4: [Param, Param]; i2t: Attn }

function lin(s: ScopedStore | ParamStore, name: string, i: number, o: number, bias = true): Lin {
  return { k: s.add(`${name}.kernel`, [i, o], normal(0.02)), b: bias ? s.add(`${name}.bias`, [o], zeros) : null };
}
function lnP(s: ScopedStore | ParamStore, name: string, c: number): [Param, Param] {
  return [s.add(`${name}.weight`, [c], ones), s.add(`${name}.bias`, [c], zeros)];
}
function bnP(s: ScopedStore, c: number, weightInit = ones): Bn {
  return { w: s.add('bn.weight', [c], weightInit), b: s.add('bn.bias', [c], zeros), mean: s.addBuffer('bn.running_mean', [c], zeros), varc: s.addBuffer('bn.running_var', [c], ones) };
}
function linApply(x: tf.Tensor, l: Lin): tf.Tensor {
  return linear(x, l.k, l.b ?? undefined);
}
function bnApply(x: tf.Tensor, p: Bn): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(tf.sub(x, p.mean.v), tf.mul(tf.rsqrt(tf.add(p.varc.v, BN_EPS)), p.w.v)), p.b.v));
}

function attnParams(s: ScopedStore, dim: number, heads: number, downsample: number): Attn {
  const inner = dim / downsample;
  return { q: lin(s, 'q_proj', dim, inner), k: lin(s, 'k_proj', dim, inner), v: lin(s, 'v_proj', dim, inner), o: lin(s, 'out_proj', inner, dim), heads };
}

/** SAM attention: softmax(q kᵀ / √d) v per head, at width dim/downsample. */
function attnApply(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, a: Attn): tf.Tensor3D {
  return tf.tidy(() => {
    const heads = (t: tf.Tensor) => {
      const [B, N, C] = t.shape as [number, number, number];
      return tf.transpose(tf.reshape(t, [B, N, a.heads, C / a.heads]), [0, 2, 1, 3]);
    };
    const qh = heads(linApply(q, a.q));
    const kh = heads(linApply(k, a.k));
    const vh = heads(linApply(v, a.v));
    const d = qh.shape[3]!;
    const w = tf.softmax(tf.div(tf.matMul(qh, kh, false, true), Math.sqrt(d)));
    const o = tf.transpose(tf.matMul(w, vh), [0, 2, 1, 3]);
    const [B, N] = q.shape;
    return linApply(tf.reshape(o, [B, N, -1]), a.o) as tf.Tensor3D;
  });
}

/** cos/sin tables [h, w, C] for LGViT's 2-D RoPE: pair m < C/4 turns by row·θ_m, pair m ≥ C/4 by col·θ_(m−C/4). */
export function ropeTables(h: number, w: number, C: number): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
  const kMax = Math.floor(C / 4);
  const cos = new Float32Array(h * w * C);
  const sin = new Float32Array(h * w * C);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      for (let m = 0; m < C / 2; m++) {
        const j = m < kMax ? m : m - kMax;
        const theta = 1 / 10000 ** (j / kMax);
        const angle = (m < kMax ? r : c) * theta;
        const o = (r * w + c) * C + 2 * m;
        cos[o] = cos[o + 1] = Math.cos(angle);
        sin[o] = sin[o + 1] = Math.sin(angle);
      }
    }
  }
  return { cos: tf.tensor3d(cos, [h, w, C]), sin: tf.tensor3d(sin, [h, w, C]) };
}

/** Rotates channel pairs (2m, 2m+1) of x [B, h, w, C] as complex numbers by the table's angles. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, h, w, C] = x.shape;
    const [re, im] = tf.unstack(tf.reshape(x, [B, h, w, C / 2, 2]), 4);
    const timesI = tf.reshape(tf.stack([tf.neg(im!), re!], 4), [B, h, w, C]); // i·(re + i·im) = −im + i·re
    return tf.add(tf.mul(x, cos), tf.mul(timesI, sin)) as tf.Tensor4D;
  });
}

export class HerSegModel implements Backbone {
  readonly arch = 'her_seg';
  readonly featureInfo: readonly FeatureInfo[];
  readonly #p: Record<string, Param> = {};
  readonly #mb: MbConv[] = [];
  readonly #lg: LgBlock[] = [];
  /** Stochastic-depth rate of each LGViT block (both residual branches). */
  readonly dropPathRates: readonly number[];
  readonly #dec: { layers: TwoWayLayer[]; final: Attn; nf: [Param, Param]; hyper: Lin[][] };

  constructor(
    readonly config: HerSegConfig,
    readonly params: ParamStore,
  ) {
    const c = config;
    const C = c.embedDim;
    const D = c.decoderDim;
    if (C % 4) throw new GatedError('config', `embedDim ${C} must be a multiple of 4 (2-D RoPE pairs)`);
    const P = c.patchSize;
    const enc = params.scope('image_encoder');
    this.#p.patch = enc.add('patch_embed.proj.kernel', [P, P, c.inChans, C], fanInUniform(c.inChans * P * P));
    this.#p.patchb = enc.add('patch_embed.proj.bias', [C], zeros);
    const hidden = Math.floor(C * c.mlpRatio);
    const rates = dropPathRamp(c.dropPath, c.depths.reduce((a, d) => a + d, 0));
    let slot = c.depths[0]!;
    this.dropPathRates = rates.slice(slot);
    for (let j = 0; j < c.depths[0]!; j++) {
      const b = enc.scope(`layers.0.blocks.${j}`);
      this.#mb.push({
        c1: b.add('conv1.c.kernel', [1, 1, C, hidden], fanInUniform(C)), bn1: bnP(b.scope('conv1'), hidden),
        c2: b.add('conv2.c.kernel', [3, 3, hidden, 1], fanInUniform(9)), bn2: bnP(b.scope('conv2'), hidden),
        c3: b.add('conv3.c.kernel', [1, 1, hidden, C], fanInUniform(hidden)), bn3: bnP(b.scope('conv3'), C, zeros),
      });
    }
    for (let i = 1; i < c.depths.length; i++) {
      const heads = c.numHeads[i]!;
      if (C % heads) throw new GatedError('config', `embedDim ${C} is not divisible by ${heads} heads`);
      for (let j = 0; j < c.depths[i]!; j++) {
        const b = enc.scope(`layers.${i}.blocks.${j}`);
        const [n1w, n1b] = lnP(b, 'norm1', C);
        const [n2w, n2b] = lnP(b, 'norm2', C);
        this.#lg.push({
          n1w, n1b, act: lin(b, 'act_proj', C, C), qk: lin(b, 'attn.qk', C, 2 * C),
          lepe: b.add('attn.lepe.kernel', [3, 3, C, 1], fanInUniform(9)), lepeb: b.add('attn.lepe.bias', [C], zeros),
          up: lin(b, 'attn.up_proj', C, Math.floor(C * 0.25)), down: lin(b, 'attn.down_proj', Math.floor(C * 0.25), C),
          out: lin(b, 'out_proj', C, C), n2w, n2b, fc1: lin(b, 'mlp.fc1', C, Math.floor(C * c.mlpRatio)), fc2: lin(b, 'mlp.fc2', Math.floor(C * c.mlpRatio), C), heads,
          dropPath: rates[slot++]!,
        });
      }
    }
    const neck = params.scope('neck');
    this.#p.neck0 = neck.add('0.kernel', [1, 1, C, D], fanInUniform(C));
    [this.#p.neck1w, this.#p.neck1b] = lnP(neck, '1', D);
    this.#p.neck2 = neck.add('2.kernel', [3, 3, D, D], fanInUniform(D * 9));
    [this.#p.neck3w, this.#p.neck3b] = lnP(neck, '3', D);
    // prompt encoder: only the no-mask embedding and the Fourier matrix run without prompts; the point and
    // mask-prompt weights are declared so that official checkpoints load whole
    const pe = params.scope('prompt_encoder');
    this.#p.gauss = pe.add('pe_layer.positional_encoding_gaussian_matrix', [2, D / 2], normal(1));
    for (let k = 0; k < 4; k++) pe.add(`point_embeddings.${k}.weight`, [1, D], normal(1));
    pe.add('not_a_point_embed.weight', [1, D], normal(1));
    const mi = c.maskInChans;
    pe.add('mask_downscaling.0.kernel', [2, 2, 1, mi / 4], fanInUniform(4)); pe.add('mask_downscaling.0.bias', [mi / 4], zeros);
    lnP(pe, 'mask_downscaling.1', mi / 4);
    pe.add('mask_downscaling.3.kernel', [2, 2, mi / 4, mi], fanInUniform(mi)); pe.add('mask_downscaling.3.bias', [mi], zeros);
    lnP(pe, 'mask_downscaling.4', mi);
    pe.add('mask_downscaling.6.kernel', [1, 1, mi, D], fanInUniform(mi)); pe.add('mask_downscaling.6.bias', [D], zeros);
    this.#p.noMask = pe.add('no_mask_embed.weight', [1, D], normal(1));
    const md = params.scope('mask_decoder');
    this.#p.iou = md.add('iou_token.weight', [1, D], normal(1));
    this.#p.maskTokens = md.add('mask_tokens.weight', [c.numMaskTokens, D], normal(1));
    const layers: TwoWayLayer[] = [];
    for (let l = 0; l < c.decoderDepth; l++) {
      const t = md.scope(`transformer.layers.${l}`);
      layers.push({
        self: attnParams(t.scope('self_attn'), D, c.decoderHeads, 1), n1: lnP(t, 'norm1', D),
        t2i: attnParams(t.scope('cross_attn_token_to_image'), D, c.decoderHeads, 2), n2: lnP(t, 'norm2', D),
        lin1: lin(t, 'mlp.lin1', D, c.decoderMlpDim), lin2: lin(t, 'mlp.lin2', c.decoderMlpDim, D), n3: lnP(t, 'norm3', D), n4: lnP(t, 'norm4', D),
        i2t: attnParams(t.scope('cross_attn_image_to_token'), D, c.decoderHeads, 2),
      });
    }
    this.#p.up0 = md.add('output_upscaling.0.kernel', [2, 2, D / 4, D], fanInUniform(D));
    this.#p.up0b = md.add('output_upscaling.0.bias', [D / 4], zeros);
    [this.#p.up1w, this.#p.up1b] = lnP(md, 'output_upscaling.1', D / 4);
    this.#p.up3 = md.add('output_upscaling.3.kernel', [2, 2, D / 8, D / 4], fanInUniform(D / 4));
    this.#p.up3b = md.add('output_upscaling.3.bias', [D / 8], zeros);
    const hyper = Array.from({ length: c.numMaskTokens }, (_, i) => [lin(md, `output_hypernetworks_mlps.${i}.layers.0`, D, D), lin(md, `output_hypernetworks_mlps.${i}.layers.1`, D, D), lin(md, `output_hypernetworks_mlps.${i}.layers.2`, D, D / 8)]);
    this.#dec = { layers, final: attnParams(md.scope('transformer.final_attn_token_to_image'), D, c.decoderHeads, 2), nf: lnP(md, 'transformer.norm_final_attn', D), hyper };
    this.featureInfo = [{ name: 'neck', channels: D, reduction: P }];
  }

  /** CE-Encoder output before the neck: [B, H/16, W/16, C]. */
  encode(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D {
    const state = new TrainState(opts);
    const [, H, W] = x.shape;
    const P = this.config.patchSize;
    if (H % P || W % P) throw new GatedError('shape', `HER-Seg input ${H}x${W} must be a multiple of the patch size ${P}`);
    return tf.tidy(() => {
      let t = conv2d(x, this.#p.patch!, this.#p.patchb!, P, 'valid');
      for (const m of this.#mb) t = this.#segment(m, [t], [], ([u]) => this.#mbconv(u as tf.Tensor4D, m)) as tf.Tensor4D;
      const [B, h, w, C] = t.shape;
      const { cos, sin } = ropeTables(h, w, C);
      for (const b of this.#lg) {
        // the stochastic-depth masks are drawn here, outside the block, so that a recomputed block sees the same ones
        const keep1 = branchScale(B, b.dropPath, state);
        const keep2 = branchScale(B, b.dropPath, state);
        // two segments per block (attention, MLP): a recomputed block's backward then holds half a block at a time
        const attn = [b.n1w, b.n1b, b.act, b.qk, b.lepe, b.lepeb, b.up, b.down, b.out];
        t = this.#segment(attn, [t], keep1 ? [cos, sin, keep1] : [cos, sin], ([u], [c, s, k]) => this.#lgAttention(u as tf.Tensor4D, b, c as tf.Tensor3D, s as tf.Tensor3D, k)) as tf.Tensor4D;
        t = this.#segment([b.n2w, b.n2b, b.fc1, b.fc2], [t], keep2 ? [keep2] : [], ([u], [k]) => this.#lgMlp(u as tf.Tensor4D, b, k)) as tf.Tensor4D;
      }
      return tf.reshape(t, [B, h, w, C]) as tf.Tensor4D;
    });
  }

  /** Image embedding after the neck: [B, H/16, W/16, 256]. */
  forwardFeatures(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D[] {
    const p = this.#p;
    const neck = [p.neck0!, p.neck1w!, p.neck1b!, p.neck2!, p.neck3w!, p.neck3b!];
    return [
      tf.tidy(() =>
        this.#segment(neck, [this.encode(x, opts)], [], ([e]) => {
          let t = conv2d(e as tf.Tensor4D, p.neck0!, null, 1, 'valid');
          t = layerNorm(t, p.neck1w!, p.neck1b!, LN2D_EPS) as tf.Tensor4D;
          t = conv2d(t, p.neck2!, null, 1, 1);
          return layerNorm(t, p.neck3w!, p.neck3b!, LN2D_EPS);
        }) as tf.Tensor4D,
      ),
    ];
  }

  /** Mask logits at the input size [B, H, W, 1] (sigmoid outside, as in the released training code). */
  forward(x: tf.Tensor4D, opts: ForwardOptions = {}): tf.Tensor4D {
    const [emb] = this.forwardFeatures(x, opts);
    const out = tf.tidy(() => {
      const low = this.decode(emb!);
      return tf.image.resizeBilinear(low, [x.shape[1], x.shape[2]], false, true) as tf.Tensor4D;
    });
    emb!.dispose();
    return out;
  }

  /** ME-Decoder: low-resolution mask logits [B, 4h, 4w, 1] from the image embedding [B, h, w, 256]. */
  decode(emb: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const p = this.#p;
      const [B, h, w, D] = emb.shape;
      const src0 = tf.reshape(tf.add(emb, tf.reshape(p.noMask!.v, [1, 1, 1, D])), [B, h * w, D]) as tf.Tensor3D;
      const pos = tf.tile(tf.reshape(this.positionEncoding(h, w), [1, h * w, D]), [B, 1, 1]) as tf.Tensor3D;
      const tokens0 = tf.tile(tf.expandDims(tf.concat([p.iou!.v, p.maskTokens!.v], 0), 0), [B, 1, 1]) as tf.Tensor3D;
      const T = tokens0.shape[1];
      let queries = tokens0;
      let keys = src0;
      this.#dec.layers.forEach((L, i) => {
        if (!this.config.recompute) {
          [queries, keys] = this.#twoWayLayer(queries, keys, tokens0, pos, L, i === 0);
          return;
        }
        // a segment has one output: the token and image streams travel as one [B, T + N, D] tensor
        const both = this.#segment(L, [tf.concat([queries, keys], 1), tokens0, pos], [], ([qk, t0, ps]) => {
          const [q, k] = tf.split(qk!, [T, h * w], 1) as [tf.Tensor3D, tf.Tensor3D];
          return tf.concat(this.#twoWayLayer(q, k, t0 as tf.Tensor3D, ps as tf.Tensor3D, L, i === 0), 1);
        });
        [queries, keys] = tf.split(both, [T, h * w], 1) as [tf.Tensor3D, tf.Tensor3D];
      });
      const final = this.#segment([this.#dec.final, this.#dec.nf], [queries, keys, tokens0, pos], [], ([q, k, t0, ps]) => this.#finalAttention(q as tf.Tensor3D, k as tf.Tensor3D, t0 as tf.Tensor3D, ps as tf.Tensor3D));
      // upscaling ×4: ConvT 2×2/s2 (PyTorch definition = TF's) → LN2d → GELU → ConvT → GELU, a segment per stage
      // (their outputs are the decoder's largest tensors)
      let u = this.#segment([p.up0!, p.up0b!, p.up1w!, p.up1b!], [tf.reshape(keys, [B, h, w, D])], [], ([k]) => {
        const t = tf.add(tf.conv2dTranspose(k as tf.Tensor4D, p.up0!.v as tf.Tensor4D, [B, 2 * h, 2 * w, D / 4], 2, 'same'), p.up0b!.v);
        return gelu(layerNorm(t, p.up1w!, p.up1b!, LN2D_EPS));
      }) as tf.Tensor4D;
      u = this.#segment([p.up3!, p.up3b!], [u], [], ([v]) => gelu(tf.add(tf.conv2dTranspose(v as tf.Tensor4D, p.up3!.v as tf.Tensor4D, [B, 4 * h, 4 * w, D / 8], 2, 'same'), p.up3b!.v))) as tf.Tensor4D;
      return this.#segment(this.#dec.hyper[0]!, [final, u], [], ([q, v]) => this.#maskProduct(q as tf.Tensor3D, v as tf.Tensor4D)) as tf.Tensor4D;
    });
  }

  /** SAM's random-Fourier position encoding of the h×w grid centres: [h, w, 256], x first. */
  positionEncoding(h: number, w: number): tf.Tensor3D {
    return tf.tidy(() => {
      const xy = new Float32Array(h * w * 2);
      for (let r = 0; r < h; r++) {
        for (let c = 0; c < w; c++) {
          xy[(r * w + c) * 2] = 2 * ((c + 0.5) / w) - 1;
          xy[(r * w + c) * 2 + 1] = 2 * ((r + 0.5) / h) - 1;
        }
      }
      const proj = tf.mul(tf.matMul(tf.tensor2d(xy, [h * w, 2]), this.#p.gauss!.v as tf.Tensor2D), 2 * Math.PI);
      return tf.reshape(tf.concat([tf.sin(proj), tf.cos(proj)], 1), [h, w, -1]) as tf.Tensor3D;
    });
  }

  dispose(): void {
    this.params.dispose();
  }

  /** `fn` on its inputs, as a recomputed segment reading the trainable variables found in `owner` when asked. */
  #segment(owner: unknown, xs: tf.Tensor[], consts: tf.Tensor[], fn: Segment): tf.Tensor {
    return this.config.recompute ? recompute(fn, xs, trainableIn(owner), consts) : fn(xs, consts);
  }

  #mbconv(x: tf.Tensor4D, m: MbConv): tf.Tensor4D {
    return tf.tidy(() => {
      let t = gelu(bnApply(tf.conv2d(x, m.c1.v as tf.Tensor4D, 1, 'valid'), m.bn1)) as tf.Tensor4D;
      t = gelu(bnApply(depthwiseConv2dFused(t, m.c2.v as tf.Tensor4D), m.bn2)) as tf.Tensor4D;
      t = bnApply(tf.conv2d(t, m.c3.v as tf.Tensor4D, 1, 'valid'), m.bn3) as tf.Tensor4D;
      return gelu(tf.add(t, x)) as tf.Tensor4D;
    });
  }

  /** x + the attention branch of an LGViT block; `keep` scales the branch per sample (stochastic depth), absent in inference. */
  #lgAttention(x: tf.Tensor4D, b: LgBlock, cos: tf.Tensor3D, sin: tf.Tensor3D, keep?: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => {
      const [B, h, w, C] = x.shape;
      const N = h * w;
      const d = C / b.heads;
      const xn = layerNorm(x, b.n1w, b.n1b, LN_EPS);
      const gate = silu(linApply(xn, b.act));
      const [qr, kr] = tf.split(linApply(xn, b.qk), 2, 3);
      const q = tf.add(tf.elu(qr!), 1);
      const k = tf.add(tf.elu(kr!), 1);
      const v = linApply(silu(linApply(xn, b.up)), b.down) as tf.Tensor4D; // gate #1: low-rank filtered values
      const rope = (t: tf.Tensor) => applyRope(t as tf.Tensor4D, cos, sin);
      const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, N, b.heads, d]), [0, 2, 1, 3]) as tf.Tensor4D;
      const y = linearAttention(heads(q), heads(k), heads(rope(q)), heads(rope(k)), heads(v), { eps: 1e-6 });
      let z = tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, h, w, C]);
      z = tf.add(z, depthwiseConv2dFused(v, b.lepe.v as tf.Tensor4D, { bias: b.lepeb.v as tf.Tensor1D }));
      const branch = linApply(tf.mul(z, gate), b.out);
      return tf.add(x, keep ? tf.mul(branch, keep) : branch) as tf.Tensor4D;
    });
  }

  /** r + the MLP branch of an LGViT block (`keep` as in #lgAttention). */
  #lgMlp(r: tf.Tensor4D, b: LgBlock, keep?: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => {
      const branch = linApply(gelu(linApply(layerNorm(r, b.n2w, b.n2b, LN_EPS), b.fc1)), b.fc2);
      return tf.add(r, keep ? tf.mul(branch, keep) : branch) as tf.Tensor4D;
    });
  }

  /** One two-way transformer layer (SAM): tokens attend to themselves and the image, the image to the tokens. */
  #twoWayLayer(queries: tf.Tensor3D, keys: tf.Tensor3D, tokens0: tf.Tensor3D, pos: tf.Tensor3D, L: TwoWayLayer, first: boolean): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      if (first) queries = attnApply(queries, queries, queries, L.self);
      else {
        const q = tf.add(queries, tokens0) as tf.Tensor3D;
        queries = tf.add(queries, attnApply(q, q, queries, L.self)) as tf.Tensor3D;
      }
      queries = layerNorm(queries, L.n1[0], L.n1[1], LN_EPS) as tf.Tensor3D;
      const kp = tf.add(keys, pos) as tf.Tensor3D;
      queries = tf.add(queries, attnApply(tf.add(queries, tokens0) as tf.Tensor3D, kp, keys, L.t2i)) as tf.Tensor3D;
      queries = layerNorm(queries, L.n2[0], L.n2[1], LN_EPS) as tf.Tensor3D;
      queries = tf.add(queries, linApply(tf.relu(linApply(queries, L.lin1)), L.lin2)) as tf.Tensor3D;
      queries = layerNorm(queries, L.n3[0], L.n3[1], LN_EPS) as tf.Tensor3D;
      const qp = tf.add(queries, tokens0) as tf.Tensor3D;
      keys = tf.add(keys, attnApply(kp, qp, queries, L.i2t)) as tf.Tensor3D;
      keys = layerNorm(keys, L.n4[0], L.n4[1], LN_EPS) as tf.Tensor3D;
      return [queries, keys];
    });
  }

  /** Final token→image attention of the decoder: the normalised tokens [B, T, D]. */
  #finalAttention(queries: tf.Tensor3D, keys: tf.Tensor3D, tokens0: tf.Tensor3D, pos: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const fq = tf.add(queries, tokens0) as tf.Tensor3D;
      const fk = tf.add(keys, pos) as tf.Tensor3D;
      return layerNorm(tf.add(queries, attnApply(fq, fk, keys, this.#dec.final)), this.#dec.nf[0], this.#dec.nf[1], LN_EPS) as tf.Tensor3D;
    });
  }

  /** Mask logits [B, 4h, 4w, 1]: the upscaled features [B, 4h, 4w, D/8] against the hypernetwork's vector. */
  #maskProduct(queries: tf.Tensor3D, u: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [B, H4, W4, C8] = u.shape;
      const D = queries.shape[2];
      // the released decoder feeds the IoU-token slot (index 0) to hypernetwork MLP 0; mask 0 is kept
      const slot = tf.squeeze(tf.slice(queries, [0, 0, 0], [B, 1, D]), [1]);
      const [l0, l1, l2] = this.#dec.hyper[0]!;
      const hyper = linApply(tf.relu(linApply(tf.relu(linApply(slot, l0!)), l1!)), l2!); // [B, D/8]
      const masks = tf.matMul(tf.reshape(u, [B, H4 * W4, C8]), tf.expandDims(hyper, 2)); // [B, 16hw, 1]
      return tf.reshape(masks, [B, H4, W4, 1]) as tf.Tensor4D;
    });
  }
}

/** Per-sample stochastic-depth scale [B, 1, 1, 1] (0 or 1/keep) of one residual branch; null when inactive. */
function branchScale(B: number, rate: number, state: TrainState): tf.Tensor4D | null {
  if (!state.training || rate === 0) return null;
  // dropPath of ones is its scale itself (1·s = s exactly): the same draw and values as dropPath on the branch
  return tf.tidy(() => dropPath(tf.ones([B, 1, 1, 1]) as tf.Tensor4D, rate, state));
}

/** The trainable variables among the Params found in `owner` (a Param, or objects and arrays holding them). */
function trainableIn(owner: unknown, out: tf.Variable[] = []): tf.Variable[] {
  if (owner instanceof Param) {
    const v = owner.v;
    if (v.trainable && !out.includes(v)) out.push(v);
  } else if (Array.isArray(owner)) for (const o of owner) trainableIn(o, out);
  else if (owner && typeof owner === 'object') for (const o of Object.values(owner)) trainableIn(o, out);
  return out;
}

/** xq141839/HER-Seg MHRMedSeg state dict → our names ('.weight' of linears/convs → '.kernel') and layouts. */
export function convertHerSegCheckpoint(official: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [key, t] of official) {
    if (key.endsWith('num_batches_tracked') || key.endsWith('rope.rotations')) continue; // counters; the RoPE table is rebuilt
    const embedding = /(iou_token|mask_tokens|point_embeddings\.\d+|not_a_point_embed|no_mask_embed)\.weight$/.test(key) || key.endsWith('positional_encoding_gaussian_matrix');
    if (embedding || t.shape.length === 1) {
      out.set(key, t);
      continue;
    }
    if (!key.endsWith('.weight')) throw new GatedError('config', `checkpoint key '${key}' has no mapping (wrong architecture?)`);
    const name = `${key.slice(0, -'.weight'.length)}.kernel`;
    if (t.shape.length === 2) out.set(name, toTf(t, 'linear'));
    else if (/output_upscaling\.[03]\.weight$/.test(key)) out.set(name, toTf(t, 'convT'));
    else if (t.shape[1] === 1 && (key.endsWith('conv2.c.weight') || key.endsWith('lepe.weight'))) out.set(name, toTf(t, 'dwconv'));
    else out.set(name, toTf(t, 'conv'));
  }
  return out;
}
