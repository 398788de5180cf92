/** The contract every head implements: backbone features (+ the input) in, a dense NHWC map at input resolution out. */
import type * as tf from '@tensorflow/tfjs-core';
import type { ScopedStore } from '../backbones/_params.ts';
import type { FeatureInfo } from '../backbones/_types.ts';

export interface Head {
  readonly kind: string;
  /** Segmentation: logits [B, H, W, classes]; restoration: the restored image [B, H, W, C]. */
  forward(features: tf.Tensor4D[], input: tf.Tensor4D): tf.Tensor4D;
}

export interface HeadContext {
  featureInfo: readonly FeatureInfo[];
  inChannels: number;
  outChannels: number;
  /** Parameters live in the model's one store under the prefix 'head'. */
  store: ScopedStore;
}

export interface HeadSpec<C extends object> {
  defaults: C;
  description: string;
  build(config: C, ctx: HeadContext): Head;
}
