/** Registers every custom kernel and gradient, explicitly and idempotently (never as an import side effect). */
import { getGradient, getKernel, registerGradient, registerKernel, type GradConfig, type KernelConfig } from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { GatedError } from '../core/errors.ts';
import { dwconvGradConfig } from './dwconv/grad.ts';
import { dwconvWebgpuConfig } from './dwconv/webgpu.ts';
import { glaGradConfig } from './gla/grad.ts';
import { glaWebgpuConfig } from './gla/webgpu.ts';

const KERNELS: KernelConfig[] = [glaWebgpuConfig, dwconvWebgpuConfig];
const GRADIENTS: GradConfig[] = [glaGradConfig, dwconvGradConfig];

const require = createRequire(import.meta.url);

export function registerAllKernels(): void {
  registerTfjsGradients();
  for (const k of KERNELS) if (!getKernel(k.kernelName, k.backendName)) registerKernel(k);
  for (const g of GRADIENTS) if (!getGradient(g.kernelName)) registerGradient(g);
}

/** tfjs-core's own gradients (Sum, MatMul, ...), which every backward pass through our ops needs. */
function registerTfjsGradients(): void {
  if (getGradient('Sum')) return;
  try {
    require('./generated/tfjs_gradients.cjs');
  } catch (e) {
    throw new GatedError('missing_dependency', `tfjs gradients are not built (run npm run build): ${(e as Error).message.split('\n')[0]}`);
  }
}
