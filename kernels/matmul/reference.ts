/**
 * Matmul reference: tfjs's batched matMul (fp32 on every backend). A batch-1 b is broadcast explicitly:
 * tfjs's BatchMatMul gradient returns an un-reduced gradient for a broadcast operand.
 */
import * as tf from '@tensorflow/tfjs-core';

export function matmulReference(a: tf.Tensor3D, b: tf.Tensor3D, transposeA: boolean, transposeB: boolean): tf.Tensor3D {
  return tf.tidy(() => {
    const bb = b.shape[0] === a.shape[0] ? b : (tf.broadcastTo(b, [a.shape[0], b.shape[1], b.shape[2]]) as tf.Tensor3D);
    return tf.matMul(a, bb, transposeA, transposeB);
  });
}
