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
  numBytesAllocated: number;
  acquireBuffer: (...args: unknown[]) => unknown;
  releaseBuffer: (...args: unknown[]) => unknown;
}

/**
 * Peak bytes of GPU buffers in use (tfjs-webgpu's buffer manager, pooled buffers excluded), for benchmarks:
 * wraps the manager's acquire once; `reset()` starts a new window at the current use. `peakAllocated()`: the
 * peak of all buffers the manager holds, its pool of idle ones included (what the device has given out).
 */
export function trackPeakGpuBytes(backend: WebGPUBackend): { reset: () => void; peak: () => number; peakAllocated: () => number } {
  const bm = (backend as unknown as { bufferManager: BufferManagerLike }).bufferManager;
  let peak = bm.numBytesUsed;
  let allocated = bm.numBytesAllocated;
  const acquire = bm.acquireBuffer.bind(bm);
  bm.acquireBuffer = (...args: unknown[]) => {
    const b = acquire(...args);
    peak = Math.max(peak, bm.numBytesUsed);
    allocated = Math.max(allocated, bm.numBytesAllocated);
    return b;
  };
  return { reset: () => void ((peak = bm.numBytesUsed), (allocated = bm.numBytesAllocated)), peak: () => peak, peakAllocated: () => allocated };
}

/**
 * Returns the buffer of a disposed tensor to the pool at once. tfjs-webgpu holds the buffer of a tensor disposed
 * while the command batch being recorded uses it until that batch is submitted (every 15 dispatches), so the
 * buffers in use reached the live tensors plus everything freed since the last submit: at ViG-T 1024², 56 MiB of
 * dead buffers on top of 85 MiB of live tensors (bench/RESULTS.md). Handing such a buffer out again before the
 * submit is safe because every later use of a pooled storage buffer is recorded in the same command encoder,
 * after the work that read it: a program's output (WebGPU orders dispatches and copies in an encoder, with
 * barriers for write-after-read), or an upload, which tfjs records as a buffer-to-buffer copy when the buffer is
 * not newly mapped; tfjs writes through the queue (`writeBuffer`, ahead of unsubmitted work) only to uniform
 * buffers, a separate pool, and never destroys pooled buffers. GATEDVISION_DEFERRED_RELEASE=1 keeps tfjs's
 * behaviour.
 */
export const pendingRelease = { immediate: process.env.GATEDVISION_DEFERRED_RELEASE !== '1', released: 0 };

interface PendingBackend {
  tensorMap: { delete(id: object): void };
  tensorDataPendingDisposal: object[];
  disposeData(dataId: object, force?: boolean): boolean;
  releaseResource(dataId: object): void;
}

export function installPendingRelease(backend: WebGPUBackend): void {
  const b = backend as unknown as PendingBackend;
  const dispose = b.disposeData.bind(b);
  b.disposeData = (dataId: object, force?: boolean) => {
    const queued = b.tensorDataPendingDisposal.length;
    const r = dispose(dataId, force);
    // tfjs queued it for release at the next submit (the last entry is this id): release it now, as submit would
    if (pendingRelease.immediate && b.tensorDataPendingDisposal.length > queued) {
      b.tensorDataPendingDisposal.pop();
      b.releaseResource(dataId);
      b.tensorMap.delete(dataId);
      pendingRelease.released++;
    }
    return r;
  };
}

/**
 * Disposes tensors and, on WebGPU, gives their buffers back to the device instead of to tfjs's pool, which keeps
 * every freed buffer for a later tensor of the same byte size: right for activations, which come again with each
 * pass, but a weight moved off the device (ParamStore.offload) leaves a buffer of a size nothing else may ask for.
 * Work already recorded is submitted first; WebGPU frees a destroyed buffer once submitted work is done with it.
 * A buffer still shared with another tensor stays.
 */
export function disposeReleasing(tensors: tf.Tensor[]): void {
  const gpu = releasingBackend();
  const isBuffer = (r: unknown): r is GPUBuffer => typeof r === 'object' && r !== null && 'destroy' in r && 'usage' in r && 'size' in r;
  // has() first: get() of an id this backend lacks would move the data here
  const buffers = gpu ? tensors.map((t) => (gpu.tensorMap.has(t.dataId) ? gpu.tensorMap.get(t.dataId).resource : null)).filter(isBuffer) : [];
  tf.dispose(tensors);
  if (gpu && buffers.length) destroyIdle(gpu, new Set(buffers));
}

/**
 * Gives every idle buffer of tfjs's pool back to the device (WebGPU; elsewhere nothing): for a benchmark that
 * measures what one pass needs from an empty pool, or a process done with a workload whose sizes will not come
 * again. The next pass allocates afresh what it needs.
 */
export function releaseIdleBuffers(): void {
  const gpu = releasingBackend();
  if (gpu) destroyIdle(gpu, null);
}

interface ReleasingBackend {
  tensorMap: { has(id: object): boolean; get(id: object): { resource?: unknown } };
  bufferManager: { freeBuffers: Map<string, GPUBuffer[]>; numFreeBuffers: number; numBytesAllocated: number };
  commandEncoder: unknown;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

function releasingBackend(): ReleasingBackend | null {
  return tf.getBackend() === 'webgpu' ? (tf.backend() as unknown as ReleasingBackend) : null;
}

/** Destroys idle pooled buffers (`only` of them, or all) after submitting recorded work that may still use them. */
function destroyIdle(gpu: ReleasingBackend, only: Set<GPUBuffer> | null): void {
  if (gpu.commandEncoder) {
    gpu.endComputePassEncoder();
    gpu.submitQueue();
  }
  const pool = gpu.bufferManager;
  for (const free of pool.freeBuffers.values()) {
    const keep = free.filter((b) => only !== null && !only.has(b));
    for (const b of free) {
      if (only !== null && !only.has(b)) continue;
      pool.numFreeBuffers--;
      pool.numBytesAllocated -= b.size;
      captureState.sink?.beforeDestroy(b);
      b.destroy();
    }
    free.splice(0, free.length, ...keep);
  }
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
 *   `//!entry mainWg LocalIndex SubgroupId` → `mainWg(WorkgroupId, LocalIndex, SubgroupId)`: further entry-point
 *                            builtins passed on; `SubgroupId` adds the `subgroup_id` builtin (needs `//!enable subgroups`)
 *   `//!diagnostic off subgroup_uniformity` → that diagnostic directive at the top of the module
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
  const entryLine = /^[ \t]*\/\/!entry (\w+)((?: \w+)*)$/m.exec(code);
  if (entryLine) {
    const entry = entryLine[1]!;
    const args = entryLine[2]!.trim().split(/\s+/).filter(Boolean);
    for (const a of args) if (a !== 'LocalIndex' && a !== 'SubgroupId') throw new Error(`shader marker: unknown entry argument '${a}'`);
    const start = out.indexOf('fn _start(');
    const call = /\bmain\((getGlobalIndex\(\))?\);/;
    if (start < 0 || !call.test(out.slice(start))) throw new Error('shader marker: no tfjs entry point to redirect');
    const head = out.slice(0, start);
    let rest = out.slice(start).replace(call, `${entry}(${['WorkgroupId', ...args].join(', ')});`);
    if (args.includes('SubgroupId')) rest = rest.replace('fn _start(', 'fn _start(@builtin(subgroup_id) SubgroupId : u32, ');
    out = head + rest;
  }
  const diagnostics = [...code.matchAll(/^[ \t]*\/\/!diagnostic (off|info|warning|error) (\w+)$/gm)].map((m) => `diagnostic(${m[1]}, ${m[2]});`);
  return `${[...new Set(enables)].map((e) => `enable ${e};`).join('\n')}\n${diagnostics.length ? `${diagnostics.join('\n')}\n` : ''}${out}`;
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
 * A buffer is destroyed only once it has left the pool (disposeReleasing, releaseIdleBuffers) and is never handed
 * out again, so a cached group naming a dead buffer is never looked up again (a new buffer gets a new id; the old
 * group ages out). GATEDVISION_BIND_GROUP_CACHE=0 turns it off.
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
  const noteWrites = (p: GPUComputePipeline, d: GPUComputePipelineDescriptor) => {
    const code = moduleCode.get(d.compute.module);
    if (code !== undefined) pipelineWrites.set(p, writtenBindings(code));
    return p;
  };
  device.createComputePipeline = (d: GPUComputePipelineDescriptor) => noteWrites(withLayouts(createPipeline(d)), d);
  device.createComputePipelineAsync = async (d: GPUComputePipelineDescriptor) => noteWrites(withLayouts(await createPipelineAsync(d)), d);
  const cache = new Map<string, GPUBindGroup>();
  const create = device.createBindGroup.bind(device);
  const createNoted = (d: GPUBindGroupDescriptor) => {
    const g = create(d);
    const entries = [...(d.entries as Iterable<GPUBindGroupEntry>)];
    if (entries.every((e) => e.resource && typeof e.resource === 'object' && 'buffer' in e.resource)) groupEntries.set(g, entries);
    return g;
  };
  device.createBindGroup = (d: GPUBindGroupDescriptor) => {
    if (!bindGroupCache.enabled) return createNoted(d);
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
    g = createNoted(d);
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
        device.createShaderModule = (d: GPUShaderModuleDescriptor) => {
          const code = applyShaderMarkers(d.code);
          const m = createShaderModule({ ...d, code });
          moduleCode.set(m, code);
          return m;
        };
        markersInstalled = true;
        installBindGroupCache(device);
        const info = (adapter as unknown as { info: GPUAdapterInfo & { subgroupMatrixConfigs?: SubgroupMatrixConfig[]; subgroupMinSize?: number; subgroupMaxSize?: number } }).info;
        if (features.includes('chromium-experimental-subgroup-matrix')) {
          matrixConfigs = (info.subgroupMatrixConfigs ?? []).map((c) => ({ componentType: String(c.componentType), resultComponentType: String(c.resultComponentType), M: c.M, N: c.N, K: c.K }));
          subgroupSizes = [info.subgroupMinSize ?? 0, info.subgroupMaxSize ?? 0];
        }
        const backend = new Backend(device, info);
        installPendingRelease(backend);
        installCaptureHooks(device, backend);
        return backend;
      },
      3,
    );
    return features;
  })();
  return registered;
}

// --- capture of a forward pass for replay (kernels/webgpu_replay.ts) ---

/** A buffer as one dispatch binds it; `written` when the program declares that binding `read_write`. */
export interface BoundBuffer {
  binding: number;
  buffer: GPUBuffer;
  offset: number;
  size: number;
  written: boolean;
}

/** What a capture is told, in the order the work reaches the device. */
export interface CaptureSink {
  /** Bytes the host puts into a buffer: `queue.writeBuffer` (uniforms) and tensor values uploaded by tfjs. */
  write(buffer: GPUBuffer, offset: number, bytes: Uint8Array): void;
  /** `program`: the tfjs program's class name (for measurements that leave programs out). */
  dispatch(pipeline: GPUComputePipeline, entries: BoundBuffer[], workgroups: [number, number, number], program: string): void;
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void;
  /** `buffer` is about to be destroyed (idle buffers given back to the device). */
  beforeDestroy(buffer: GPUBuffer): void;
  /** tfjs binds the tensor `dataId` through `buffer` (called before each dispatch that uses it). */
  bind(buffer: GPUBuffer, dataId: object): void;
  /** Something a replay cannot reproduce; throws. */
  fail(reason: string): never;
}

/** The capture in progress (one at a time, JavaScript being single-threaded), or null. */
export const captureState: { sink: CaptureSink | null } = { sink: null };

const moduleCode = new WeakMap<GPUShaderModule, string>();
const pipelineWrites = new WeakMap<GPUComputePipeline, Set<number>>();
const groupEntries = new WeakMap<GPUBindGroup, GPUBindGroupEntry[]>();
let rawEncoder: ((d?: GPUCommandEncoderDescriptor) => GPUCommandEncoder) | null = null;
let uploading = false;
let currentProgram = '';

/** Bindings a WGSL module declares `var<storage, read_write>` (tfjs declares `@group(0) @binding(n)` first). */
export function writtenBindings(code: string): Set<number> {
  const out = new Set<number>();
  for (const m of code.matchAll(/@binding\(\s*(\d+)\s*\)\s*var\s*<\s*storage\s*,\s*read_write\s*>/g)) out.add(Number(m[1]));
  return out;
}

/** A command encoder that no capture watches (the replay's own work). */
export function unwatchedEncoder(device: GPUDevice): GPUCommandEncoder {
  return rawEncoder ? rawEncoder() : device.createCommandEncoder();
}

function bytesOf(data: ArrayBuffer | ArrayBufferView, dataOffset?: number, size?: number): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data, dataOffset ?? 0, size ?? data.byteLength - (dataOffset ?? 0)).slice();
  const view = data as ArrayBufferView;
  const per = 'BYTES_PER_ELEMENT' in view ? (view as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT : 1;
  const start = view.byteOffset + (dataOffset ?? 0) * per;
  const len = size !== undefined ? size * per : view.byteLength - (dataOffset ?? 0) * per;
  return new Uint8Array(view.buffer, start, len).slice();
}

function watchEncoder(enc: GPUCommandEncoder): void {
  const sink = () => captureState.sink;
  const copy = enc.copyBufferToBuffer.bind(enc) as (...a: unknown[]) => void;
  (enc as unknown as { copyBufferToBuffer: (...a: unknown[]) => void }).copyBufferToBuffer = (...a: unknown[]) => {
    const s = sink();
    if (s && !uploading) {
      if (a.length !== 5) s.fail('a buffer copy without explicit offsets');
      s.copy(a[0] as GPUBuffer, a[1] as number, a[2] as GPUBuffer, a[3] as number, a[4] as number);
    }
    copy(...a);
  };
  const clear = enc.clearBuffer.bind(enc);
  enc.clearBuffer = (...a: Parameters<GPUCommandEncoder['clearBuffer']>) => {
    sink()?.fail('a buffer cleared by the encoder');
    clear(...a);
  };
  const begin = enc.beginComputePass.bind(enc);
  enc.beginComputePass = (d?: GPUComputePassDescriptor) => {
    const pass = begin(d);
    let pipeline: GPUComputePipeline | null = null;
    let group: GPUBindGroup | null = null;
    const setPipeline = pass.setPipeline.bind(pass);
    pass.setPipeline = (p: GPUComputePipeline) => void ((pipeline = p), setPipeline(p));
    const setBindGroup = pass.setBindGroup.bind(pass) as (...a: unknown[]) => void;
    (pass as unknown as { setBindGroup: (...a: unknown[]) => void }).setBindGroup = (...a: unknown[]) => {
      const s = sink();
      if (s && (a[0] !== 0 || (a[2] !== undefined && (a[2] as ArrayLike<number>).length > 0))) s.fail('a bind group other than group 0 without dynamic offsets');
      group = a[1] as GPUBindGroup;
      setBindGroup(...a);
    };
    const dispatch = pass.dispatchWorkgroups.bind(pass);
    pass.dispatchWorkgroups = (x: number, y?: number, z?: number) => {
      const s = sink();
      if (s) {
        const entries = group ? groupEntries.get(group) : undefined;
        const writes = pipeline ? pipelineWrites.get(pipeline) : undefined;
        if (!pipeline || !entries || !writes) return s.fail('a dispatch whose program or bindings were not made through this device');
        s.dispatch(
          pipeline,
          entries.map((e) => {
            const r = e.resource as GPUBufferBinding;
            const offset = r.offset ?? 0;
            return { binding: e.binding, buffer: r.buffer, offset, size: r.size ?? r.buffer.size - offset, written: writes.has(e.binding) };
          }),
          [x, y ?? 1, z ?? 1],
          currentProgram,
        );
      }
      dispatch(x, y, z);
    };
    const indirect = pass.dispatchWorkgroupsIndirect.bind(pass);
    pass.dispatchWorkgroupsIndirect = (...a: Parameters<GPUComputePassEncoder['dispatchWorkgroupsIndirect']>) => {
      sink()?.fail('an indirect dispatch');
      indirect(...a);
    };
    return pass;
  };
}

interface CaptureBackend {
  tensorMap: { has(id: object): boolean; get(id: object): { values: ArrayLike<number> | null; dtype: string; resource?: unknown } | undefined };
  activeTimers: unknown;
  uploadToGPU(dataId: object): void;
  [m: string]: unknown;
}

function installCaptureHooks(device: GPUDevice, backend: WebGPUBackend): void {
  const createEncoder = device.createCommandEncoder.bind(device);
  rawEncoder = createEncoder;
  device.createCommandEncoder = (d?: GPUCommandEncoderDescriptor) => {
    const enc = createEncoder(d);
    if (captureState.sink) watchEncoder(enc);
    return enc;
  };
  const queue = device.queue;
  const write = queue.writeBuffer.bind(queue) as (...a: unknown[]) => void;
  (queue as unknown as { writeBuffer: (...a: unknown[]) => void }).writeBuffer = (...a: unknown[]) => {
    captureState.sink?.write(a[0] as GPUBuffer, a[1] as number, bytesOf(a[2] as ArrayBuffer | ArrayBufferView, a[3] as number | undefined, a[4] as number | undefined));
    write(...a);
  };
  const b = backend as unknown as CaptureBackend;
  const record = (b['recordAndSubmit'] as (p: { constructor: { name: string } }, ...a: unknown[]) => unknown).bind(b);
  b['recordAndSubmit'] = (p: { constructor: { name: string } }, ...a: unknown[]) => {
    if (captureState.sink) currentProgram = p.constructor.name;
    return record(p, ...a);
  };
  const upload = b.uploadToGPU.bind(b);
  b.uploadToGPU = (dataId: object) => {
    const s = captureState.sink;
    const d = b.tensorMap.get(dataId);
    if (!s || !d || d.resource != null || d.values == null) return upload(dataId);
    // tfjs holds int32 and bool as int32 on the device, everything else as float32
    const typed = d.dtype === 'int32' || d.dtype === 'bool' ? Int32Array.from(d.values) : Float32Array.from(d.values);
    uploading = true;
    try {
      upload(dataId);
    } finally {
      uploading = false;
    }
    s.write(b.tensorMap.get(dataId)!.resource as unknown as GPUBuffer, 0, new Uint8Array(typed.buffer));
  };
  const toBinding = (b['tensorToBinding'] as (t: tf.TensorInfo | null) => unknown).bind(b);
  b['tensorToBinding'] = (t: tf.TensorInfo | null) => {
    const r = toBinding(t);
    const s = captureState.sink;
    if (s && t && r && typeof r === 'object' && 'buffer' in r) s.bind((r as GPUBufferBinding).buffer, t.dataId);
    return r;
  };
  for (const m of ['read', 'readSync', 'readToGPU']) {
    const f = (b[m] as (...a: unknown[]) => unknown).bind(b);
    b[m] = (dataId: object, ...rest: unknown[]) => {
      const s = captureState.sink;
      if (s && b.tensorMap.get(dataId)?.values == null) s.fail(`the forward reads a tensor back from the device (${m})`);
      return f(dataId, ...rest);
    };
  }
}

/** tfjs-webgpu's state a capture and a replay need: its device, a tensor's buffer, and a flush of recorded work. */
export interface ReplayBackendView {
  device: GPUDevice;
  /** The tensor's device buffer, uploading its values first when they are still on the host. */
  bufferOf(t: tf.TensorInfo): GPUBuffer;
  /** Submits everything tfjs has recorded, so that work the caller submits next comes after it. */
  flush(): void;
  /** A new tensor of tfjs's whose device buffer is allocated (contents undefined until written). */
  allocate(shape: number[], dtype: tf.DataType): { tensor: tf.Tensor; buffer: GPUBuffer };
  profiling(): boolean;
  /** Whether the tensor `dataId` is alive and still held in `buffer`. */
  holds(dataId: object, buffer: GPUBuffer): boolean;
}

export function replayBackendView(): ReplayBackendView | null {
  if (tf.getBackend() !== 'webgpu' || !rawEncoder) return null;
  const b = tf.backend() as unknown as CaptureBackend & {
    device: GPUDevice;
    commandEncoder: unknown;
    endComputePassEncoder(): void;
    submitQueue(): void;
    makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  };
  const bufferOf = (t: tf.TensorInfo) => {
    b.uploadToGPU(t.dataId);
    const r = b.tensorMap.get(t.dataId)?.resource;
    if (!r || !(r instanceof GPUBuffer)) throw new Error('tensor has no device buffer');
    return r as unknown as GPUBuffer;
  };
  return {
    device: b.device,
    bufferOf,
    flush: () => {
      b.endComputePassEncoder();
      if (b.commandEncoder) b.submitQueue();
    },
    allocate: (shape, dtype) => {
      const info = b.makeTensorInfo(shape, dtype);
      const buffer = bufferOf(info);
      return { tensor: tf.engine().makeTensorFromTensorInfo(info), buffer };
    },
    profiling: () => b.activeTimers != null,
    // has() first: get() of an id this backend lacks would move the data here
    holds: (dataId, buffer) => b.tensorMap.has(dataId) && b.tensorMap.get(dataId)?.resource === buffer,
  };
}
