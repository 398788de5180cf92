/**
 * adamwUpdate(param, m, v, grad, step): the parameter and both moments after one AdamW step — three fused
 * dispatches on WebGPU, the composite in tfjs ops elsewhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { forceReference } from '../flags.ts';
import { AdamWUpdate, type AdamWAttrs, type AdamWStep } from '../kernel_names.ts';
import { adamwReference } from './reference.ts';

export function adamwUpdate(param: tf.Tensor, m: tf.Tensor, v: tf.Tensor, grad: tf.Tensor, step: AdamWStep): { param: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  if (forceReference() || param.dtype !== 'float32' || grad.dtype !== 'float32' || tf.getKernel(AdamWUpdate, tf.getBackend()) === undefined) return adamwReference(param, m, v, grad, step);
  const run = (which: AdamWAttrs['which']) => tf.engine().runKernel(AdamWUpdate, { param, m, v, grad }, { ...step, which } as unknown as NamedAttrMap) as tf.Tensor;
  return { param: run('param'), m: run('m'), v: run('v') };
}
