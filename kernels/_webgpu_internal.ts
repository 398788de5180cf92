/**
 * The only file that refers to tfjs-backend-webgpu's program types. Types only: importing the package's
 * values would register the backend before navigator.gpu exists (it checks once, at import).
 */
export type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/** A 1D dispatch of `n` invocations, split over y when x would pass the 65535-workgroup limit. */
export function flatDispatch(n: number, workgroup: number): [number, number, number] {
  const groups = Math.ceil(n / workgroup);
  if (groups <= 65535) return [groups, 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}
