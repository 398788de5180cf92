/**
 * The only file that refers to tfjs-backend-webgpu's internals. Its values are imported lazily: importing the
 * package registers the backend, and it looks for navigator.gpu once, at import.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
export type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/** A 1D dispatch of `n` invocations, split over y when x would pass the 65535-workgroup limit. */
export function flatDispatch(n: number, workgroup: number): [number, number, number] {
  const groups = Math.ceil(n / workgroup);
  if (groups <= 65535) return [groups, 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}

interface BufferManagerLike {
  numBytesUsed: number;
  acquireBuffer: (...args: unknown[]) => unknown;
  releaseBuffer: (...args: unknown[]) => unknown;
}

/**
 * Peak bytes of GPU buffers in use (tfjs-webgpu's buffer manager, pooled buffers excluded), for benchmarks:
 * wraps the manager's acquire once; `reset()` starts a new window at the current use.
 */
export function trackPeakGpuBytes(backend: WebGPUBackend): { reset: () => void; peak: () => number } {
  const bm = (backend as unknown as { bufferManager: BufferManagerLike }).bufferManager;
  let peak = bm.numBytesUsed;
  const acquire = bm.acquireBuffer.bind(bm);
  bm.acquireBuffer = (...args: unknown[]) => {
    const b = acquire(...args);
    peak = Math.max(peak, bm.numBytesUsed);
    return b;
  };
  return { reset: () => void (peak = bm.numBytesUsed), peak: () => peak };
}

/** Device features we use or may use, requested whenever the adapter offers them. */
export const WANTED_FEATURES = ['timestamp-query', 'shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'];

let registered: Promise<string[]> | undefined;

/**
 * Replaces tfjs's 'webgpu' backend factory (whose device asks only for timestamp queries) with one whose device
 * also has shader-f16, subgroups and subgroup matrices where offered, and the adapter's full compute limits.
 * Once per process, before the backend is first used; resolves to the features the device will have.
 */
export function registerWebgpuBackend(): Promise<string[]> {
  registered ??= (async () => {
    const { WebGPUBackend: Backend } = await import('@tensorflow/tfjs-backend-webgpu');
    const gpu = (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu;
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return [];
    const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
    tf.removeBackend('webgpu');
    tf.registerBackend(
      'webgpu',
      async () => {
        const l = adapter.limits;
        const device = await adapter.requestDevice({
          requiredFeatures: features as GPUFeatureName[],
          requiredLimits: {
            maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
            maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
            maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
            maxBufferSize: l.maxBufferSize,
            maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
            maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
          },
        });
        return new Backend(device, (adapter as unknown as { info: GPUAdapterInfo }).info);
      },
      3,
    );
    return features;
  })();
  return registered;
}
