/**
 * Fused depthwise convolution for locality injection and MBConv/LePE blocks:
 *   depthwiseConv2dFused(x [N, H, W, C], filter [kh, kw, C, 1], { bias [C], activation, gate, padding, strides })
 *   → act(dwconv(x) + bias) ⊙ gate, [N, outH, outW, C]; the gate (output-shaped) multiplies after the activation.
 * padding 'same' (default) pads as TensorFlow does (extra row/column at the bottom/right when odd);
 * 'valid' pads nothing. strides: one number or [sh, sw] (default 1).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';
import { forceReference, recordingGradients } from '../flags.ts';
import { DepthwiseConv2dFused, type Activation, type DwAttrs } from '../kernel_names.ts';
import { dwconvReference } from './reference.ts';

export interface DwconvOptions {
  bias?: tf.Tensor1D;
  activation?: Activation;
  gate?: tf.Tensor4D;
  padding?: 'same' | 'valid';
  strides?: number | [number, number];
}

export function depthwiseConv2dFused(x: tf.Tensor4D, filter: tf.Tensor4D, opts: DwconvOptions = {}): tf.Tensor4D {
  if (x.rank !== 4 || filter.rank !== 4 || filter.shape[2] !== x.shape[3] || filter.shape[3] !== 1) {
    throw new GatedError('shape', `x must be [N, H, W, C] and filter [kh, kw, C, 1]; got x ${x.shape}, filter ${filter.shape}`);
  }
  const [N, H, W, C] = x.shape;
  const [kh, kw] = filter.shape;
  const padding = opts.padding ?? 'same';
  const s = opts.strides ?? 1;
  const strides: [number, number] = typeof s === 'number' ? [s, s] : s;
  if (!strides.every((v) => Number.isInteger(v) && v >= 1)) throw new GatedError('shape', `strides must be positive integers; got ${strides}`);
  const [outH, outW] = outputSize(H, W, kh, kw, strides, padding);
  if (outH < 1 || outW < 1) throw new GatedError('shape', `a ${kh}x${kw} 'valid' window does not fit in ${H}x${W}`);
  if (opts.bias && (opts.bias.rank !== 1 || opts.bias.shape[0] !== C)) throw new GatedError('shape', `bias must be [${C}]; got ${opts.bias.shape}`);
  const outShape = [N, outH, outW, C];
  if (opts.gate && opts.gate.shape.join() !== outShape.join()) throw new GatedError('shape', `gate must match the output [${outShape}]; got ${opts.gate.shape}`);
  const activation = opts.activation ?? 'linear';
  if (forceReference() || tf.getKernel(DepthwiseConv2dFused, tf.getBackend()) === undefined) {
    return tf.tidy(() => dwconvReference(x, filter, opts.bias ?? (tf.zeros([C]) as tf.Tensor1D), opts.gate ?? null, activation, padding, strides));
  }
  if (!recordingGradients()) {
    // no tape saves the inputs: absent ones are left out instead of uploading placeholders per call
    const attrs: DwAttrs = { activation, hasBias: Boolean(opts.bias), hasGate: Boolean(opts.gate), padding, strides };
    const inputs: Record<string, tf.Tensor> = { x, filter };
    if (opts.bias) inputs.bias = opts.bias;
    if (opts.gate) inputs.gate = opts.gate;
    return tf.engine().runKernel(DepthwiseConv2dFused, inputs, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const bias = opts.bias ?? (tf.zeros([C]) as tf.Tensor1D);
    const attrs: DwAttrs = { activation, hasBias: true, hasGate: Boolean(opts.gate), padding, strides };
    const gate = opts.gate ?? (tf.zeros([1, 1, 1, 1]) as tf.Tensor4D);
    return tf.engine().runKernel(DepthwiseConv2dFused, { x, filter, bias, gate }, attrs as unknown as NamedAttrMap) as tf.Tensor4D;
  });
}

/** Output size and top/left padding, as TensorFlow computes them. */
export function convGeometry(H: number, W: number, kh: number, kw: number, strides: [number, number], padding: 'same' | 'valid') {
  const [outH, outW] = outputSize(H, W, kh, kw, strides, padding);
  if (padding === 'valid') return { outH, outW, padTop: 0, padLeft: 0 };
  const padH = Math.max((outH - 1) * strides[0] + kh - H, 0);
  const padW = Math.max((outW - 1) * strides[1] + kw - W, 0);
  return { outH, outW, padTop: Math.floor(padH / 2), padLeft: Math.floor(padW / 2) };
}

function outputSize(H: number, W: number, kh: number, kw: number, [sh, sw]: [number, number], padding: 'same' | 'valid'): [number, number] {
  return padding === 'same' ? [Math.ceil(H / sh), Math.ceil(W / sw)] : [Math.ceil((H - kh + 1) / sh), Math.ceil((W - kw + 1) / sw)];
}
