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
