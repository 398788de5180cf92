/**
 * Gradient of MatMulFast, through matmulFast itself (so training also runs the fast kernel):
 * C = op(A)·op(B) ⇒ dA and dB by the usual transposed products; a broadcast b (batch 1) sums over the batch.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs-core';
import { MatMulFast, type MatMulFastAttrs } from '../kernel_names.ts';
import { matmulFast } from './op.ts';

export const matmulGradConfig: GradConfig = {
  kernelName: MatMulFast,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs: NamedAttrMap) => {
    const [a, b] = saved as tf.Tensor3D[];
    const { transposeA: tA, transposeB: tB, precision } = attrs as unknown as MatMulFastAttrs;
    const g = dy as tf.Tensor3D;
    const mm = (x: tf.Tensor3D, y: tf.Tensor3D, transposeA: boolean, transposeB: boolean) => matmulFast(x, y, { transposeA, transposeB, precision });
    const da = () => (tA ? mm(b!, g, tB, true) : mm(g, b!, false, !tB));
    const db = () => {
      const full = tB ? mm(g, a!, true, tA) : mm(a!, g, !tA, false);
      return b!.shape[0] === 1 && a!.shape[0] !== 1 ? tf.sum(full, 0, true) : full;
    };
    return { a: da, b: db };
  },
};
