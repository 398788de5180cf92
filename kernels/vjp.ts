/**
 * Vector-Jacobian product of a tfjs function, callable from inside a gradient function. tfjs's engine
 * clears its active tape when a nested `tf.grads` finishes at depth 0, which breaks (and leaks) the outer
 * backward pass that is running our gradient; the outer tape is saved and put back around the call.
 */
import * as tf from '@tensorflow/tfjs-core';

interface EngineState {
  activeTape: unknown[] | null;
}

export function vjp(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = (tf.engine() as unknown as { state: EngineState }).state;
  const outer = state.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    state.activeTape = outer;
  }
}
