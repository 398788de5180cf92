/**
 * A light FPN decoder for the single- and multi-scale backbones (ViG, ViG-H, Activator, DeiT): 1×1 laterals,
 * top-down sums, all levels resampled to the finest and fused by a 3×3 conv; then a full-resolution detail
 * branch from the input itself, because stride-4 logits blur the boundaries that Dice on thin structures
 * (cortex, vessels) is decided by. Upsampling is bilinear by interpolation matrices, so it is differentiable
 * on every backend (wasm has no ResizeBilinearGrad).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Init } from '../backbones/_params.ts';
import { conv2d, gelu } from '../backbones/layers/ops.ts';
import { jaxLinearMatrix, resizeSeparable } from '../backbones/layers/resize.ts';
import { GatedError } from '../core/errors.ts';
import type { Head, HeadContext, HeadSpec } from './_types.ts';
import { convParams, type ConvP } from './_conv.ts';

export interface FpnConfig {
  /** Channels of the pyramid. */
  dim: number;
  /** Channels of the full-resolution detail branch (0 turns it off). */
  detailChannels: number;
}

export const FPN_DEFAULTS: FpnConfig = { dim: 64, detailChannels: 16 };

export class FpnHead implements Head {
  readonly kind = 'fpn';
  readonly #lateral: ConvP[];
  readonly #fuse: ConvP;
  readonly #detail: ConvP | null;
  readonly #out: ConvP;
  readonly #reductions: number[];

  constructor(
    readonly config: FpnConfig,
    ctx: HeadContext,
  ) {
    const { dim, detailChannels } = config;
    if (!(dim > 0) || !(detailChannels >= 0)) throw new GatedError('config', `fpn head: dim must be > 0 and detailChannels ≥ 0`);
    if (ctx.featureInfo.length === 0) throw new GatedError('config', 'fpn head: the backbone exposes no feature maps');
    const s = ctx.store;
    const conv = (name: string, kh: number, cin: number, cout: number, init?: Init): ConvP => convParams(s, name, kh, cin, cout, init);
    this.#reductions = ctx.featureInfo.map((f) => f.reduction);
    this.#lateral = ctx.featureInfo.map((f, i) => conv(`lateral.${i}`, 1, f.channels, dim));
    this.#fuse = conv('fuse', 3, dim, dim);
    this.#detail = detailChannels > 0 ? conv('detail', 3, ctx.inChannels, detailChannels) : null;
    this.#out = conv('out', 3, dim + detailChannels, ctx.outChannels);
  }

  forward(features: tf.Tensor4D[], input: tf.Tensor4D): tf.Tensor4D {
    if (features.length !== this.#lateral.length) throw new GatedError('shape', `fpn head expects ${this.#lateral.length} feature maps, got ${features.length}`);
    return tf.tidy(() => {
      const [, H, W] = input.shape;
      // coarsest first, so each level adds the upsampled sum of everything coarser
      const order = features.map((_, i) => i).sort((a, b) => this.#reductions[b]! - this.#reductions[a]!);
      let acc: tf.Tensor4D | null = null;
      for (const i of order) {
        const lat = conv2d(features[i]!, this.#lateral[i]!.k, this.#lateral[i]!.b, 1, 0);
        acc = acc === null ? lat : (tf.add(lat, resize(acc, lat.shape[1], lat.shape[2])) as tf.Tensor4D);
      }
      const fused = gelu(conv2d(acc!, this.#fuse.k, this.#fuse.b, 1, 1)) as tf.Tensor4D;
      let full = resize(fused, H, W);
      if (this.#detail) full = tf.concat([full, gelu(conv2d(input, this.#detail.k, this.#detail.b, 1, 1)) as tf.Tensor4D], -1);
      return conv2d(full, this.#out.k, this.#out.b, 1, 1);
    });
  }
}

const matrices = new Map<string, tf.Tensor2D>();

/** Half-pixel bilinear resize (PyTorch align_corners=False when upsampling), matrices cached per size pair. */
export function resize(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  if (x.shape[1] === h && x.shape[2] === w) return x;
  return resizeSeparable(x, matrix(x.shape[1], h), matrix(x.shape[2], w));
}

function matrix(from: number, to: number): tf.Tensor2D {
  const key = `${tf.getBackend()}:${from}->${to}`;
  let m = matrices.get(key);
  if (!m) {
    m = tf.keep(jaxLinearMatrix(from, to));
    matrices.set(key, m);
  }
  return m;
}

export const fpnSpec: HeadSpec<FpnConfig> = {
  defaults: FPN_DEFAULTS,
  description: 'light FPN decoder with a full-resolution detail branch (segmentation logits)',
  build: (config, ctx) => new FpnHead(config, ctx),
};
