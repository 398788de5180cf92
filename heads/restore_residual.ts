/**
 * A small residual restoration head for backbones that do not restore natively (ViG, ViG-H, Activator, DeiT):
 * backbone features are projected, upsampled to the input and fused with a full-resolution branch from the
 * input; the head predicts a residual that is added to the input (the centre slice when the model has 2.5D
 * context). The last conv starts at zero, so an untrained model is the identity and training only has to
 * learn the correction — the usual start for denoisers (DnCNN, NAFNet).
 */
import * as tf from '@tensorflow/tfjs-core';
import { uniform, zeros, type Init } from '../backbones/_params.ts';
import { conv2d, gelu } from '../backbones/layers/ops.ts';
import { GatedError } from '../core/errors.ts';
import type { Head, HeadContext, HeadSpec } from './_types.ts';
import { convParams, type ConvP } from './_conv.ts';
import { resize } from './fpn.ts';

export interface ResidualConfig {
  /** Channels of the fused features. */
  dim: number;
  /** 3×3 conv layers at full resolution after the fusion. */
  depth: number;
  /** Residual blocks after those layers (h + conv(gelu(conv(h))), 3×3 at full resolution). Their second conv
   *  starts at zero, so a model grown from a trained one by adding blocks computes exactly what that one did and
   *  training continues from there with more capacity. */
  blocks?: number;
}

/** He initialisation (variance 2 / fan-in) for the plain GELU conv stack: with the default fan-in uniform
 *  (variance 1 / (3 fan-in)) each GELU layer shrinks the signal about 3.4x, a 12-layer body hands the output conv
 *  almost nothing, and training sits for hundreds of steps at the identity before it starts to denoise. */
export const kaimingUniform = (fanIn: number): Init => uniform(Math.sqrt(6 / fanIn));

export const RESIDUAL_DEFAULTS: ResidualConfig = { dim: 32, depth: 2, blocks: 0 };

export class ResidualHead implements Head {
  readonly kind = 'residual';
  readonly #lateral: ConvP[];
  readonly #inConv: ConvP;
  readonly #body: ConvP[];
  readonly #blocks: [ConvP, ConvP][];
  readonly #out: ConvP;
  readonly #centre: number;
  readonly #outChannels: number;

  constructor(
    readonly config: ResidualConfig,
    ctx: HeadContext,
  ) {
    const { dim, depth, blocks = 0 } = config;
    if (!(Number.isInteger(dim) && dim > 0) || !(Number.isInteger(depth) && depth >= 1) || !(Number.isInteger(blocks) && blocks >= 0)) {
      throw new GatedError('config', 'residual head: dim must be > 0, depth ≥ 1 and blocks ≥ 0 (whole numbers)');
    }
    if (ctx.inChannels % ctx.outChannels !== 0) throw new GatedError('config', `residual head: ${ctx.inChannels} input channels are not whole slices of ${ctx.outChannels}`);
    const s = ctx.store;
    const conv = (name: string, kh: number, cin: number, cout: number, init?: Init): ConvP => convParams(s, name, kh, cin, cout, init);
    this.#lateral = ctx.featureInfo.map((f, i) => conv(`lateral.${i}`, 1, f.channels, dim));
    this.#inConv = conv('input', 3, ctx.inChannels, dim, kaimingUniform(9 * ctx.inChannels));
    this.#body = Array.from({ length: depth }, (_, i) => conv(`body.${i}`, 3, i === 0 ? 2 * dim : dim, dim, kaimingUniform(9 * (i === 0 ? 2 * dim : dim))));
    this.#blocks = Array.from({ length: blocks }, (_, i) => [conv(`block.${i}.a`, 3, dim, dim, kaimingUniform(9 * dim)), conv(`block.${i}.b`, 3, dim, dim, zeros)]);
    // the last conv also sees the input itself: a linear filter of the input is the first thing a denoiser
    // learns, and this path learns it in a few steps instead of through the whole stack
    this.#out = conv('out', 3, dim + ctx.inChannels, ctx.outChannels, zeros);
    const slices = ctx.inChannels / ctx.outChannels;
    this.#centre = ((slices - 1) / 2) * ctx.outChannels;
    this.#outChannels = ctx.outChannels;
  }

  forward(features: tf.Tensor4D[], input: tf.Tensor4D): tf.Tensor4D {
    if (features.length !== this.#lateral.length) throw new GatedError('shape', `residual head expects ${this.#lateral.length} feature maps, got ${features.length}`);
    return tf.tidy(() => {
      const [, H, W] = input.shape;
      let ctx: tf.Tensor4D | null = null;
      for (let i = 0; i < features.length; i++) {
        const lat = resize(conv2d(features[i]!, this.#lateral[i]!.k, this.#lateral[i]!.b, 1, 0), H, W);
        ctx = ctx === null ? lat : (tf.add(ctx, lat) as tf.Tensor4D);
      }
      const local = gelu(conv2d(input, this.#inConv.k, this.#inConv.b, 1, 1)) as tf.Tensor4D;
      let h: tf.Tensor4D = tf.concat([local, ctx ?? tf.zerosLike(local)], -1);
      for (const c of this.#body) h = gelu(conv2d(h, c.k, c.b, 1, 1)) as tf.Tensor4D;
      for (const [a, b] of this.#blocks) h = tf.add(h, conv2d(gelu(conv2d(h, a.k, a.b, 1, 1)) as tf.Tensor4D, b.k, b.b, 1, 1)) as tf.Tensor4D;
      const residual = conv2d(tf.concat([h, input], -1), this.#out.k, this.#out.b, 1, 1);
      const centre = this.#centre === 0 && input.shape[3] === this.#outChannels ? input : (tf.slice(input, [0, 0, 0, this.#centre], [-1, -1, -1, this.#outChannels]) as tf.Tensor4D);
      return tf.add(centre, residual) as tf.Tensor4D;
    });
  }
}

export const residualSpec: HeadSpec<ResidualConfig> = {
  defaults: RESIDUAL_DEFAULTS,
  description: 'residual restoration head: input + a residual predicted from backbone features and a full-resolution branch',
  build: (config, ctx) => new ResidualHead(config, ctx),
};
