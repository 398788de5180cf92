/** The contract every backbone implements (timm's feature contract, NHWC). */
import type * as tf from '@tensorflow/tfjs-core';
import type { ParamStore } from './_params.ts';
import type { ForwardOptions } from './layers/drop_path.ts';
import type { StateDict } from './weights/tensors.ts';

/** One feature map a head can consume: channels and stride relative to the input. */
export interface FeatureInfo {
  name: string;
  channels: number;
  reduction: number;
}

/** What input sizes a variant accepts. */
export interface InputConstraint {
  /** H and W must be multiples of this. */
  multipleOf: number;
  minSize: number;
  /** Size the weights were trained at (position tables are resized from it). */
  nativeSize: number;
  note: string;
}

export interface Backbone {
  readonly arch: string;
  readonly params: ParamStore;
  readonly featureInfo: readonly FeatureInfo[];
  /**
   * Task output: class logits [B, classes] for classifiers, the restored image [B, H, W, 3] for MAXIM.
   * `{ training: true }` turns on train-only behaviour (stochastic depth); the default is inference.
   */
  forward(x: tf.Tensor4D, opts?: ForwardOptions): tf.Tensor;
  /** Multi-scale maps matching featureInfo, NHWC. */
  forwardFeatures(x: tf.Tensor4D, opts?: ForwardOptions): tf.Tensor4D[];
  /**
   * The run-time switches that change what a forward pass computes for the same input shape (MAXIM's local
   * pooling), as a string: a recorded forward (kernels/webgpu_replay.ts) is kept apart for each. Absent: none.
   */
  forwardKey?(): string;
  dispose(): void;
}

/** Official checkpoint (already parsed into a state dict) → our parameter names and layouts. */
export type CheckpointConverter<C> = (official: StateDict, config: C) => StateDict;

export type { ForwardOptions } from './layers/drop_path.ts';
