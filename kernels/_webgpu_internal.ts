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

/**
 * Marker comments a program's WGSL may carry for what tfjs's shader generator cannot express (it writes every
 * declaration itself and calls `main()` from its own entry point):
 *   `//!enable f16`        → `enable f16;` at the top of the module (extensions must precede all declarations)
 *   `//!f16 a b`           → inputs `a` and `b` declared `array<f16>` (their int32 tensors hold packed halves;
 *                            tfjs's accessors convert with `i32(...)`, valid from f16)
 *   `//!entry mainWg`      → the entry point calls `mainWg(WorkgroupId)` instead of `main()`: a workgroup id that
 *                            WGSL's uniformity analysis can see (subgroup-matrix offsets must be uniform, and
 *                            tfjs passes ids through private variables, which it treats as non-uniform)
 */
export function applyShaderMarkers(code: string): string {
  if (!code.includes('//!')) return code;
  let out = code;
  const enables: string[] = [];
  for (const m of code.matchAll(/^[ \t]*\/\/!enable ([\w ]+)$/gm)) enables.push(...m[1]!.trim().split(/\s+/));
  for (const m of code.matchAll(/^[ \t]*\/\/!f16 ([\w ]+)$/gm)) {
    for (const name of m[1]!.trim().split(/\s+/)) {
      const decl = new RegExp(`(var<storage, read> ${name}: array<)(i32|f32|u32)(>;)`);
      if (!decl.test(out)) throw new Error(`shader marker: no storage input '${name}' to declare as f16`);
      out = out.replace(decl, '$1f16$3');
    }
  }
  const entry = /^[ \t]*\/\/!entry (\w+)$/m.exec(code)?.[1];
  if (entry) {
    const start = out.indexOf('fn _start(');
    const call = /\bmain\((getGlobalIndex\(\))?\);/;
    if (start < 0 || !call.test(out.slice(start))) throw new Error('shader marker: no tfjs entry point to redirect');
    out = out.slice(0, start) + out.slice(start).replace(call, `${entry}(WorkgroupId);`);
  }
  return `${[...new Set(enables)].map((e) => `enable ${e};`).join('\n')}\n${out}`;
}

let markersInstalled = false;
/** Whether devices made by registerWebgpuBackend apply the shader markers (programs relying on them check). */
export function shaderMarkersInstalled(): boolean {
  return markersInstalled;
}

/** Subgroup-matrix shapes of the adapter (Dawn's `subgroupMatrixConfigs`), empty where it has none. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}
let matrixConfigs: SubgroupMatrixConfig[] = [];
let subgroupSizes: [number, number] = [0, 0];
export function subgroupMatrixConfigs(): { configs: SubgroupMatrixConfig[]; subgroupMinSize: number; subgroupMaxSize: number } {
  return { configs: matrixConfigs, subgroupMinSize: subgroupSizes[0], subgroupMaxSize: subgroupSizes[1] };
}

/**
 * Reuses bind groups. tfjs creates one per dispatch, through a fresh `getBindGroupLayout(0)` each time; with
 * Dawn in Node each is a native call with a converted descriptor, a large part of the host's ~0.1 ms per op
 * (bench/RESULTS.md). Buffers come from tfjs's pool and are handed out again in the same order when the same
 * work repeats, so a bind group keyed by its layout and each entry's buffer, offset and size is found again.
 * Pooled buffers are never destroyed while the device lives, and a destroyed one is never handed out again,
 * so a cached group never refers to a dead buffer. GATEDVISION_BIND_GROUP_CACHE=0 turns it off.
 */
export const bindGroupCache = { enabled: process.env.GATEDVISION_BIND_GROUP_CACHE !== '0', max: 8192, hits: 0, misses: 0 };

export function installBindGroupCache(device: GPUDevice): void {
  const ids = new WeakMap<object, number>();
  let next = 1;
  const idOf = (o: object) => {
    let i = ids.get(o);
    if (i === undefined) ids.set(o, (i = next++));
    return i;
  };
  const withLayouts = <P extends GPUComputePipeline>(p: P): P => {
    const layouts = new Map<number, GPUBindGroupLayout>();
    const get = p.getBindGroupLayout.bind(p);
    p.getBindGroupLayout = (i: number) => {
      let l = layouts.get(i);
      if (!l) layouts.set(i, (l = get(i)));
      return l;
    };
    return p;
  };
  const createPipeline = device.createComputePipeline.bind(device);
  const createPipelineAsync = device.createComputePipelineAsync.bind(device);
  device.createComputePipeline = (d: GPUComputePipelineDescriptor) => withLayouts(createPipeline(d));
  device.createComputePipelineAsync = async (d: GPUComputePipelineDescriptor) => withLayouts(await createPipelineAsync(d));
  const cache = new Map<string, GPUBindGroup>();
  const create = device.createBindGroup.bind(device);
  device.createBindGroup = (d: GPUBindGroupDescriptor) => {
    if (!bindGroupCache.enabled) return create(d);
    let key = String(idOf(d.layout));
    for (const e of d.entries as Iterable<GPUBindGroupEntry>) {
      const r = e.resource as GPUBufferBinding;
      if (!r || typeof r !== 'object' || !('buffer' in r)) return create(d); // textures, samplers: not cached
      key += `|${e.binding}:${idOf(r.buffer)}:${r.offset ?? 0}:${r.size ?? -1}`;
    }
    let g = cache.get(key);
    if (g) {
      bindGroupCache.hits++;
      return g;
    }
    bindGroupCache.misses++;
    g = create(d);
    if (cache.size >= bindGroupCache.max) cache.delete(cache.keys().next().value!); // oldest first
    cache.set(key, g);
    return g;
  };
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
        const createShaderModule = device.createShaderModule.bind(device);
        device.createShaderModule = (d: GPUShaderModuleDescriptor) => createShaderModule({ ...d, code: applyShaderMarkers(d.code) });
        markersInstalled = true;
        installBindGroupCache(device);
        const info = (adapter as unknown as { info: GPUAdapterInfo & { subgroupMatrixConfigs?: SubgroupMatrixConfig[]; subgroupMinSize?: number; subgroupMaxSize?: number } }).info;
        if (features.includes('chromium-experimental-subgroup-matrix')) {
          matrixConfigs = (info.subgroupMatrixConfigs ?? []).map((c) => ({ componentType: String(c.componentType), resultComponentType: String(c.resultComponentType), M: c.M, N: c.N, K: c.K }));
          subgroupSizes = [info.subgroupMinSize ?? 0, info.subgroupMaxSize ?? 0];
        }
        return new Backend(device, info);
      },
      3,
    );
    return features;
  })();
  return registered;
}
