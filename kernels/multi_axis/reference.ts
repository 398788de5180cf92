/**
 * MAXIM's block/unblock (architectures.md §3.2) in tfjs ops: a reshape, a transpose that brings the
 * two block-grid axes before the two in-block axes, and a reshape. Its own inverse up to the axis order.
 */
import * as tf from '@tensorflow/tfjs-core';

/** [n, gh·fh, gw·fw, c] → [n, gh·gw, fh·fw, c]: blocks in raster order, pixels in raster order inside each. */
export function partitionReference(x: tf.Tensor4D, gh: number, gw: number, fh: number, fw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, , , c] = x.shape;
    const six = tf.reshape(x, [n, gh, fh, gw, fw, c]);
    return tf.reshape(tf.transpose(six, [0, 1, 3, 2, 4, 5]), [n, gh * gw, fh * fw, c]) as tf.Tensor4D;
  });
}

/** [n, gh·gw, fh·fw, c] → [n, gh·fh, gw·fw, c]. */
export function unpartitionReference(y: tf.Tensor4D, gh: number, gw: number, fh: number, fw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, , , c] = y.shape;
    const six = tf.reshape(y, [n, gh, gw, fh, fw, c]);
    return tf.reshape(tf.transpose(six, [0, 1, 3, 2, 4, 5]), [n, gh * fh, gw * fw, c]) as tf.Tensor4D;
  });
}
