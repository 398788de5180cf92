import * as tf from '@tensorflow/tfjs-core';
/**
 * GATEDVISION_FORCE_REFERENCE_KERNELS=1 routes every custom op to its tfjs-ops reference (as tfjs's
 * WEBGPU_CPU_FORWARD does), for bisecting a numerical difference to one kernel.
 */
let forced: boolean | undefined;

export function forceReference(): boolean {
  forced ??= process.env.GATEDVISION_FORCE_REFERENCE_KERNELS === '1';
  return forced;
}

export function setForceReference(on: boolean): void {
  forced = on;
}

/**
 * GATEDVISION_GLA_KERNEL=split runs BiGLA as two single-direction scans (the earlier WebGPU kernel) instead of
 * the fused bidirectional kernel, so one benchmark run can time both.
 */
let glaMode: 'fused' | 'split' | undefined;

export function glaBidirectionalMode(): 'fused' | 'split' {
  glaMode ??= process.env.GATEDVISION_GLA_KERNEL === 'split' ? 'split' : 'fused';
  return glaMode;
}

export function setGlaBidirectionalMode(mode: 'fused' | 'split'): void {
  glaMode = mode;
}

/**
 * True while the engine records a tape (inside tf.grads, tf.variableGrads, an optimizer's minimize). Outside it an
 * op may leave absent optional inputs out of runKernel; inside it every input the gradient saves must exist.
 */
export function recordingGradients(): boolean {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number; kernelDepth: number } }).state;
  return state.gradientDepth > 0 && state.kernelDepth === 0;
}

/**
 * True while WebGPU programs are compiled without running (tfjs's WEBGPU_ENGINE_COMPILE_ONLY): tensors made then
 * hold no values, so nothing built from them may be kept.
 */
export function compilingOnly(): boolean {
  return tf.env().getFlags()['WEBGPU_ENGINE_COMPILE_ONLY'] === true;
}
