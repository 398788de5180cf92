/** Registers every custom kernel and gradient, explicitly and idempotently (never as an import side effect). */
import { getGradient, getKernel, registerGradient, registerKernel, type GradConfig, type KernelConfig } from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { GatedError } from '../core/errors.ts';
import { adamwWebgpuConfig } from './adamw/webgpu.ts';
import { dwconvGradConfig } from './dwconv/grad.ts';
import { dwconvWebgpuConfig } from './dwconv/webgpu.ts';
import { glaBiGradConfig, glaGradConfig } from './gla/grad.ts';
import { glaWebgpuConfig } from './gla/webgpu.ts';
import { glaBiWebgpuConfig } from './gla/webgpu_bi.ts';
import { glaBiGradWebgpuConfig, glaGradWebgpuConfig } from './gla/backward.ts';
import { linearAttentionGradConfig } from './linear_attention/grad.ts';
import { linearAttentionWebgpuConfig } from './linear_attention/webgpu.ts';
import { matmulGradConfig } from './matmul/grad.ts';
import { matmulWebgpuConfig } from './matmul/webgpu.ts';
import { multiAxisGradConfig } from './multi_axis/grad.ts';
import { multiAxisWebgpuConfig } from './multi_axis/webgpu.ts';
import { geluGradConfig } from './gelu/grad.ts';
import { geluWebgpuConfig } from './gelu/webgpu.ts';
import { layerNormGradConfig } from './layer_norm/grad.ts';
import { layerNormWebgpuConfig } from './layer_norm/webgpu.ts';
import { rmsNormGradConfig } from './rms_norm/grad.ts';
import { rmsNormWebgpuConfig } from './rms_norm/webgpu.ts';
import { gliMergeGradWebgpuConfig } from './gli/backward.ts';
import { gliMergeGradConfig } from './gli/grad.ts';
import { gliMergeWebgpuConfig } from './gli/webgpu.ts';
import { tokensToHeadsGradWebgpuConfig } from './heads/backward.ts';
import { tokensToHeadsGradConfig } from './heads/grad.ts';
import { tokensToHeadsWebgpuConfig } from './heads/webgpu.ts';
import { linearGradConfig } from './linear/grad.ts';
import { linearWebgpuConfig } from './linear/webgpu.ts';
import { swigluGradWebgpuConfig } from './swiglu/backward.ts';
import { swigluGradConfig } from './swiglu/grad.ts';
import { swigluWebgpuConfig } from './swiglu/webgpu.ts';
import { useWasmKernelReplacements, WASM_TRAINING_KERNELS } from './wasm_training/index.ts';
import { useConvBackpropFilterOnWebgpu } from './webgpu_training/conv2d_backprop_filter.ts';

const KERNELS: KernelConfig[] = [glaWebgpuConfig, glaBiWebgpuConfig, glaBiGradWebgpuConfig, glaGradWebgpuConfig, dwconvWebgpuConfig, linearAttentionWebgpuConfig, multiAxisWebgpuConfig, matmulWebgpuConfig, rmsNormWebgpuConfig, layerNormWebgpuConfig, geluWebgpuConfig, linearWebgpuConfig, swigluWebgpuConfig, tokensToHeadsWebgpuConfig, tokensToHeadsGradWebgpuConfig, swigluGradWebgpuConfig, gliMergeWebgpuConfig, gliMergeGradWebgpuConfig, adamwWebgpuConfig, ...WASM_TRAINING_KERNELS];
const GRADIENTS: GradConfig[] = [glaGradConfig, glaBiGradConfig, dwconvGradConfig, linearAttentionGradConfig, multiAxisGradConfig, matmulGradConfig, rmsNormGradConfig, layerNormGradConfig, geluGradConfig, linearGradConfig, swigluGradConfig, tokensToHeadsGradConfig, gliMergeGradConfig];

const require = createRequire(import.meta.url);

export function registerAllKernels(): void {
  registerTfjsGradients();
  for (const k of KERNELS) if (!getKernel(k.kernelName, k.backendName)) registerKernel(k);
  for (const g of GRADIENTS) if (!getGradient(g.kernelName)) registerGradient(g);
  useWasmKernelReplacements();
  useConvBackpropFilterOnWebgpu();
}

/** tfjs-core's own gradients (Sum, MatMul, ...), which every backward pass through our ops needs. */
function registerTfjsGradients(): void {
  if (getGradient('Sum')) return;
  // beside this file when run from source; from a bundle in dist/ (or .gpu/), next to it or in the source tree
  const candidates = ['./generated/tfjs_gradients.cjs', '../kernels/generated/tfjs_gradients.cjs'];
  let first: unknown;
  for (const c of candidates) {
    try {
      require(c);
      return;
    } catch (e) {
      first ??= e;
    }
  }
  throw new GatedError('missing_dependency', `tfjs gradients are not built (run npm run build): ${(first as Error).message.split('\n')[0]}`);
}
