/**
 * Multi-axis partitions for MAXIM's gated MLPs (architectures.md §3.2). Both produce the same layout,
 * [n, G = gh·gw, P = fh·fw, c] (block index in raster order over the grid, then pixel inside the block):
 *
 *   blockPartition(x, [fh, fw])          fixed block size, gh = H/fh (BlockGmlp mixes along P: local)
 *   gridPartition(x, [gh, gw])           fixed grid, fh = H/gh       (GridGmlp mixes along G: global, dilated)
 *   blockUnpartition(y, [fh, fw], [H, W]) and gridUnpartition(y, [gh, gw], [H, W]) invert them exactly.
 *
 * H and W must be multiples of the block (or grid) size; MAXIM pads its input to make them so.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference } from '../flags.ts';
import { MultiAxisPartition, type MultiAxisAttrs } from '../kernel_names.ts';
import { partitionReference, unpartitionReference } from './reference.ts';

export function blockPartition(x: tf.Tensor4D, blockSize: [number, number]): tf.Tensor4D {
  const [fh, fw] = blockSize;
  const [gh, gw] = divide(x, fh, fw, 'block size');
  return run(x, { gh, gw, fh, fw, inverse: false });
}

export function gridPartition(x: tf.Tensor4D, gridSize: [number, number]): tf.Tensor4D {
  const [gh, gw] = gridSize;
  const [fh, fw] = divide(x, gh, gw, 'grid size');
  return run(x, { gh, gw, fh, fw, inverse: false });
}

export function blockUnpartition(y: tf.Tensor4D, blockSize: [number, number], imageSize: [number, number]): tf.Tensor4D {
  const [fh, fw] = blockSize;
  const [H, W] = imageSize;
  return runInverse(y, { gh: H / fh, gw: W / fw, fh, fw, inverse: true }, imageSize);
}

export function gridUnpartition(y: tf.Tensor4D, gridSize: [number, number], imageSize: [number, number]): tf.Tensor4D {
  const [gh, gw] = gridSize;
  const [H, W] = imageSize;
  return runInverse(y, { gh, gw, fh: H / gh, fw: W / gw, inverse: true }, imageSize);
}

// --- internal ---

function divide(x: tf.Tensor4D, a: number, b: number, what: string): [number, number] {
  if (x.rank !== 4) throw new GatedError('shape', `x must be [N, H, W, C]; got ${x.shape}`);
  const [, H, W] = x.shape;
  if (!(a >= 1 && b >= 1 && Number.isInteger(a) && Number.isInteger(b)) || H % a !== 0 || W % b !== 0) {
    throw new GatedError('shape', `image ${H}x${W} is not divisible by the ${what} ${a}x${b}`);
  }
  return [H / a, W / b];
}

function runInverse(y: tf.Tensor4D, attrs: MultiAxisAttrs, imageSize: [number, number]): tf.Tensor4D {
  const { gh, gw, fh, fw } = attrs;
  if (![gh, gw, fh, fw].every((v) => Number.isInteger(v) && v >= 1)) {
    throw new GatedError('shape', `image ${imageSize.join('x')} is not divisible into ${gh}x${gw} blocks of ${fh}x${fw}`);
  }
  if (y.rank !== 4 || y.shape[1] !== gh * gw || y.shape[2] !== fh * fw) {
    throw new GatedError('shape', `y must be [N, ${gh * gw}, ${fh * fw}, C] for a ${imageSize.join('x')} image; got ${y.shape}`);
  }
  return run(y, attrs);
}

function run(x: tf.Tensor4D, attrs: MultiAxisAttrs): tf.Tensor4D {
  if (forceReference() || tf.getKernel(MultiAxisPartition, tf.getBackend()) === undefined) {
    const { gh, gw, fh, fw } = attrs;
    return attrs.inverse ? unpartitionReference(x, gh, gw, fh, fw) : partitionReference(x, gh, gw, fh, fw);
  }
  return tf.engine().runKernel(MultiAxisPartition, { x }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
}
