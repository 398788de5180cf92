/**
 * Shared pieces of the training kernels written as tfjs ops (wasm_training/, webgpu_training/): a kernel whose
 * body is ordinary tfjs ops (each one the backend's own kernel), the geometry of a 2D convolution as tfjs computes it, and the checks every kernel
 * makes before it runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util } from '@tensorflow/tfjs-core';
import type { KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';

export type Pad = 'same' | 'valid' | number | backend_util.ExplicitPadding;

/**
 * A kernel computed with tfjs ops. Ops called from inside a kernel are not taped (the engine is at kernel
 * depth > 0); the tidy frees every intermediate, and the engine takes the returned Tensor as the output as is.
 */
export function opsKernel(kernelName: string, body: (inputs: Record<string, tf.Tensor>, attrs: NamedAttrMap) => tf.Tensor, backendName = 'wasm'): KernelConfig {
  return {
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) =>
      tf.tidy(() => {
        const ts: Record<string, tf.Tensor> = {};
        for (const [k, v] of Object.entries(inputs)) if (v) ts[k] = asTensor(v, backend as tf.KernelBackend);
        return body(ts, attrs ?? {});
      }),
  };
}

/** Inputs arrive as Tensors from every op; a bare TensorInfo gets a wrapper that holds its own reference. */
export function asTensor(info: TensorInfo, backend: tf.KernelBackend): tf.Tensor {
  if (info instanceof tf.Tensor) return info;
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend);
}

export interface ConvGeometry {
  N: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  outH: number;
  outW: number;
  padTop: number;
  padLeft: number;
}

/** Geometry of an NHWC convolution with dilation 1, as tfjs computes it (so 'same' pads as TensorFlow does). */
export function convGeometry(
  kernel: string,
  xShape: number[],
  filterShape: number[],
  strides: number | [number, number],
  pad: Pad,
  dimRoundingMode: 'floor' | 'round' | 'ceil' | undefined,
  depthwise: boolean,
  dilations: number | [number, number] = 1,
  dataFormat = 'NHWC',
): ConvGeometry {
  if (dataFormat !== 'NHWC') throw new GatedError('config', `${kernel} (as tfjs ops) supports NHWC only; got ${dataFormat} (transpose to NHWC or use --device cpu)`);
  const d = typeof dilations === 'number' ? [dilations, dilations] : dilations;
  if (d.some((v) => v !== 1)) throw new GatedError('config', `${kernel} (as tfjs ops) supports dilation 1 only; got ${d} (use --device cpu)`);
  if (xShape.length !== 4 || filterShape.length !== 4) throw new GatedError('shape', `${kernel}: x and filter must be rank 4; got ${xShape} and ${filterShape}`);
  const info = backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number], strides, 1, pad, dimRoundingMode, depthwise, 'channelsLast');
  return {
    N: info.batchSize, H: info.inHeight, W: info.inWidth, kh: info.filterHeight, kw: info.filterWidth,
    sh: info.strideHeight, sw: info.strideWidth, outH: info.outHeight, outW: info.outWidth,
    padTop: info.padInfo.top, padLeft: info.padInfo.left,
  };
}

/**
 * Along the two given axes: `before` zeros ahead of the data (a negative number crops instead), then zeros or
 * cropping at the end so each axis has exactly `length` entries. One pad and at most one slice.
 */
export function fitAxes(t: tf.Tensor, axes: [number, number], before: [number, number], length: [number, number]): tf.Tensor {
  const padding: [number, number][] = t.shape.map(() => [0, 0]);
  const begin = t.shape.map(() => 0);
  const size = t.shape.slice();
  let padded = false;
  let cropped = false;
  axes.forEach((ax, i) => {
    const b = Math.max(0, before[i]!);
    const crop = Math.max(0, -before[i]!);
    const after = Math.max(0, crop + length[i]! - (t.shape[ax]! + b));
    padding[ax] = [b, after];
    begin[ax] = crop;
    size[ax] = length[i]!;
    padded ||= b > 0 || after > 0;
    cropped ||= crop > 0 || t.shape[ax]! + b + after !== length[i]!;
  });
  const p = padded ? tf.pad(t, padding) : t;
  return cropped ? tf.slice(p, begin, size) : p;
}

/** The input window that filter tap (i, j) sees: rows i, i+sh, ... of the padded input (axes 1 and 2 unless given). */
export function tap(xPad: tf.Tensor, g: ConvGeometry, i: number, j: number, axes: [number, number] = [1, 2]): tf.Tensor {
  const begin = xPad.shape.map(() => 0);
  const end = xPad.shape.slice();
  const strides = xPad.shape.map(() => 1);
  begin[axes[0]] = i;
  begin[axes[1]] = j;
  end[axes[0]] = i + (g.outH - 1) * g.sh + 1;
  end[axes[1]] = j + (g.outW - 1) * g.sw + 1;
  if (g.sh === 1 && g.sw === 1) return tf.slice(xPad, begin, end.map((e, k) => e - begin[k]!));
  strides[axes[0]] = g.sh;
  strides[axes[1]] = g.sw;
  return tf.stridedSlice(xPad, begin, end, strides);
}
