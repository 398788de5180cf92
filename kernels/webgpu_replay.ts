/**
 * A forward pass recorded once on WebGPU and replayed for later inputs of the same shape.
 *
 * tfjs spends about 80 µs of host time on every dispatch (shader key, uniforms, bind group, submit batching;
 * bench/RESULTS.md), so a ViG-T forward at 1024² takes three times its GPU time. A replay keeps what one
 * forward sent to the device — pipelines, bindings, workgroup counts, uniform bytes, uploaded constants — and
 * sends it again from a prepared list: a few µs per dispatch.
 *
 * It owns its intermediates: every tensor the forward writes gets a buffer of the replay's from a static plan
 * (tfjs's pool hands its own buffers out again to other tensors), and every host write (uniforms, constants
 * created in the forward) becomes a slice of one of two packed buffers. A buffer that held data before the
 * forward is the input, or a tensor still alive when the capture ends (weights, packed weights, cached constants:
 * read in place, and each run first checks that every one is still the same live tensor in the same buffer), or
 * else a copy taken before the capture saw it written or destroyed. A forward that reads a tensor back to the
 * host, clears buffers or dispatches indirectly, or writes into its input cannot be replayed: the capture throws
 * and keeps nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { captureState, replayBackendView, unwatchedEncoder, type BoundBuffer, type CaptureSink, type ReplayBackendView } from './_webgpu_internal.ts';

/**
 * One tensor's data as the forward wrote it: a buffer of the replay's is given to it at its first step and taken
 * back after its last, so values whose lives do not overlap share memory (a static plan of the pass).
 */
interface Value {
  size: number;
  /** The tensor tfjs bound when it was written (a later write of the same tensor continues the same value). */
  dataId: object | undefined;
  first: number;
  last: number;
  buffer?: GPUBuffer;
}

/** Where a buffer's contents are during the replay; `own`: a copy taken during the capture. */
type Loc =
  | { kind: 'value'; value: Value }
  | { kind: 'own'; buffer: GPUBuffer }
  | { kind: 'keep'; buffer: GPUBuffer; dataId: object }
  | { kind: 'input' }
  | { kind: 'const'; index: number };

interface PlannedEntry {
  binding: number;
  loc: Loc;
  offset: number;
  size: number;
}

type PlannedStep =
  | { kind: 'dispatch'; pipeline: GPUComputePipeline; entries: PlannedEntry[]; workgroups: [number, number, number]; program: string }
  | { kind: 'copy'; src: Loc; srcOffset: number; dst: Loc; dstOffset: number; size: number };

type Step =
  | { kind: 'dispatch'; pipeline: GPUComputePipeline; group: GPUBindGroup; workgroups: [number, number, number]; program: string }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; size: number };

const STORAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

class Recorder implements CaptureSink {
  readonly steps: PlannedStep[] = [];
  readonly consts: { uniform: boolean; bytes: Uint8Array }[] = [];
  readonly owned: GPUBuffer[] = [];
  readonly #loc = new Map<GPUBuffer, Loc>();
  readonly values: Value[] = [];
  readonly #bound = new Map<GPUBuffer, object>();
  /**
   * Buffers of tensors alive when the forward first read them, read in place so far. One the capture sees
   * written, or destroyed, is copied first (the copy reaches the queue before tfjs's recorded work, so it copies
   * what the forward read); one still alive at the end stays read in place.
   */
  readonly #pending = new Map<GPUBuffer, Loc>();

  constructor(
    readonly view: ReplayBackendView,
    readonly input: GPUBuffer,
  ) {}

  bind(buffer: GPUBuffer, dataId: object): void {
    this.#bound.set(buffer, dataId);
  }

  fail(reason: string): never {
    throw new GatedError('internal', `this forward pass cannot be replayed: ${reason}`);
  }

  beforeDestroy(buffer: GPUBuffer): void {
    this.#detach(buffer);
  }

  write(buffer: GPUBuffer, offset: number, bytes: Uint8Array): void {
    this.#detach(buffer);
    const prev = this.#loc.get(buffer);
    const whole = offset === 0 && bytes.length >= buffer.size;
    const full = new Uint8Array(buffer.size);
    if (prev?.kind === 'const') full.set(this.consts[prev.index]!.bytes);
    else if (prev && !whole) this.fail('a partial host write over data the device wrote');
    full.set(bytes.subarray(0, buffer.size - offset), offset);
    this.consts.push({ uniform: (buffer.usage & GPUBufferUsage.UNIFORM) !== 0, bytes: full });
    this.#loc.set(buffer, { kind: 'const', index: this.consts.length - 1 });
  }

  dispatch(pipeline: GPUComputePipeline, entries: BoundBuffer[], workgroups: [number, number, number], program: string): void {
    const targets = new Map<GPUBuffer, Value>();
    for (const e of entries) {
      const b = e.buffer;
      if (!e.written || targets.has(b)) continue;
      if (b === this.input) this.fail('a write into the input');
      this.#detach(b);
      const cur = this.#loc.get(b);
      const id = this.#bound.get(b);
      // the same tensor written again (e.g. a fill, then an accumulation) continues its value
      const v = cur?.kind === 'value' && id !== undefined && cur.value.dataId === id ? cur.value : this.#value(b.size, id);
      // read in place through another binding: the program must find the current contents in its own buffer
      if (cur && !(cur.kind === 'value' && cur.value === v) && entries.some((o) => o.buffer === b && !o.written)) this.#push({ kind: 'copy', src: cur, srcOffset: 0, dst: { kind: 'value', value: v }, dstOffset: 0, size: b.size });
      targets.set(b, v);
    }
    const planned = entries.map((e) => {
      const t = targets.get(e.buffer);
      return { binding: e.binding, loc: t ? ({ kind: 'value', value: t } as Loc) : this.#read(e.buffer), offset: e.offset, size: e.size };
    });
    this.#push({ kind: 'dispatch', pipeline, entries: planned, workgroups, program });
    for (const [b, v] of targets) this.#loc.set(b, { kind: 'value', value: v });
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    const from = this.#read(src);
    if (dst === this.input) this.fail('a copy into the input');
    this.#detach(dst);
    const whole = dstOffset === 0 && size >= dst.size;
    // a whole copy of contents nothing will change again needs no work: the copy names them
    if (whole && srcOffset === 0 && size === src.size && from.kind !== 'value') {
      this.#loc.set(dst, from);
      return;
    }
    const cur = this.#loc.get(dst);
    const v = !whole && cur?.kind === 'value' ? cur.value : this.#value(dst.size, undefined);
    if (!whole && cur && !(cur.kind === 'value' && cur.value === v)) this.#push({ kind: 'copy', src: cur, srcOffset: 0, dst: { kind: 'value', value: v }, dstOffset: 0, size: dst.size });
    this.#push({ kind: 'copy', src: from, srcOffset, dst: { kind: 'value', value: v }, dstOffset, size });
    this.#loc.set(dst, { kind: 'value', value: v });
  }

  #value(size: number, dataId: object | undefined): Value {
    const v: Value = { size, dataId, first: -1, last: -1 };
    this.values.push(v);
    return v;
  }

  /** Appends a step and extends the lives of the values it uses to it. */
  #push(step: PlannedStep): void {
    const i = this.steps.length;
    this.steps.push(step);
    const locs = step.kind === 'copy' ? [step.src, step.dst] : step.entries.map((e) => e.loc);
    for (const l of locs) {
      if (l.kind !== 'value') continue;
      if (l.value.first < 0) l.value.first = i;
      l.value.last = Math.max(l.value.last, i);
    }
  }

  /** Where the contents of `b` are now; the first read of a buffer the forward did not make decides (see #pending). */
  #read(b: GPUBuffer): Loc {
    const cur = this.#loc.get(b);
    if (cur) return cur;
    let loc: Loc;
    const dataId = this.#bound.get(b);
    if (b === this.input) loc = { kind: 'input' };
    else if (dataId && this.view.holds(dataId, b)) {
      loc = { kind: 'keep', buffer: b, dataId };
      this.#pending.set(b, loc);
    } else loc = { kind: 'own', buffer: this.#snapshot(b) };
    this.#loc.set(b, loc);
    return loc;
  }

  /** Where an output's contents end; a value read at the end lives to the end. */
  locOf(b: GPUBuffer): Loc {
    const loc = this.#read(b);
    if (loc.kind === 'value') loc.value.last = Infinity;
    return loc;
  }

  /** At the end of the capture: the tensors read in place that a run must find alive; the others are copied now. */
  keepLive(): { dataId: object; buffer: GPUBuffer }[] {
    const kept: { dataId: object; buffer: GPUBuffer }[] = [];
    for (const [b, loc] of [...this.#pending]) {
      if (loc.kind === 'keep' && this.view.holds(loc.dataId, b)) kept.push({ dataId: loc.dataId, buffer: b });
      else this.#detach(b);
    }
    return kept;
  }

  /** A buffer read in place is about to change: the replay reads a copy of what the forward read instead. */
  #detach(b: GPUBuffer): void {
    const loc = this.#pending.get(b);
    if (!loc) return;
    this.#pending.delete(b);
    Object.assign(loc, { kind: 'own', buffer: this.#snapshot(b), dataId: undefined });
  }

  /**
   * A copy of `b` as the capture found it: nothing recorded since the capture began wrote it, and tfjs's recorded
   * but unsubmitted work reaches the queue after this copy.
   */
  #snapshot(b: GPUBuffer): GPUBuffer {
    const copy = this.#own(b.size);
    const enc = unwatchedEncoder(this.view.device);
    enc.copyBufferToBuffer(b, 0, copy, 0, b.size);
    this.view.device.queue.submit([enc.finish()]);
    return copy;
  }

  #own(size: number): GPUBuffer {
    const b = this.view.device.createBuffer({ size, usage: STORAGE() });
    this.owned.push(b);
    return b;
  }
}

export class Replay {
  readonly #view: ReplayBackendView;
  readonly #steps: Step[];
  readonly #owned: GPUBuffer[];
  readonly #inputBuffer: GPUBuffer;
  readonly #inputBytes: number;
  readonly #outputs: { buffer: GPUBuffer; shape: number[]; dtype: tf.DataType; bytes: number }[];
  readonly #keep: { dataId: object; buffer: GPUBuffer }[];
  #alive = true;

  /** Number of dispatches one run issues. */
  readonly dispatches: number;
  /** Bytes of device memory the replay owns (intermediates, copies, constants, its input). */
  readonly bytes: number;

  constructor(
    readonly inputShape: number[],
    readonly inputDtype: tf.DataType,
    view: ReplayBackendView,
    steps: Step[],
    owned: GPUBuffer[],
    inputBuffer: GPUBuffer,
    outputs: { buffer: GPUBuffer; shape: number[]; dtype: tf.DataType; bytes: number }[],
    keep: { dataId: object; buffer: GPUBuffer }[],
    /** The tensors the forward wrote (values), and the buffers the plan gave them. */
    readonly plan: { values: number; buffers: number },
  ) {
    this.#view = view;
    this.#steps = steps;
    this.#owned = owned;
    this.#inputBuffer = inputBuffer;
    this.#inputBytes = tf.util.sizeFromShape(inputShape) * 4;
    this.#outputs = outputs;
    this.#keep = keep;
    this.dispatches = steps.filter((s) => s.kind === 'dispatch').length;
    this.bytes = owned.reduce((n, b) => n + b.size, 0);
  }

  /** Tensors it reads in place (weights and other tensors made before the capture that were still alive after it). */
  get kept(): number {
    return this.#keep.length;
  }

  /** False once a tensor it reads in place was disposed or replaced (e.g. by an optimizer step), or after destroy(). */
  valid(): boolean {
    return this.#alive && this.#keep.every((k) => this.#view.holds(k.dataId, k.buffer));
  }

  /**
   * Runs the recorded forward on `x` (same shape and dtype as the capture's input); new tensors, the caller's to
   * dispose. The work goes out in submits of growing size (16, 32, 64, ... dispatches), so that the device starts
   * while the host is still encoding the rest.
   */
  /** Dispatches per program (tfjs program class names), in the order first met. */
  programs(): Map<string, number> {
    const m = new Map<string, number>();
    for (const s of this.#steps) if (s.kind === 'dispatch') m.set(s.program, (m.get(s.program) ?? 0) + 1);
    return m;
  }

  /**
   * `skip`, for measurements only: the dispatches of these programs are left out, so the time they take in a
   * replay can be read from the difference; the outputs are then wrong.
   */
  run(x: tf.Tensor, skip?: ReadonlySet<string>): tf.Tensor[] {
    if (!this.#alive) throw new GatedError('internal', 'the replay was destroyed');
    if (x.dtype !== this.inputDtype || !tf.util.arraysEqual(x.shape, this.inputShape)) throw new GatedError('shape', `the replay was recorded for ${this.inputDtype} [${this.inputShape}], got ${x.dtype} [${x.shape}]`);
    if (!this.valid()) throw new GatedError('internal', 'a tensor the replay reads in place was disposed or replaced; record it again');
    const view = this.#view;
    const src = view.bufferOf(x);
    view.flush();
    const outs = this.#outputs.map((o) => view.allocate(o.shape, o.dtype));
    const device = view.device;
    let enc = unwatchedEncoder(device);
    enc.copyBufferToBuffer(src, 0, this.#inputBuffer, 0, this.#inputBytes);
    let pass: GPUComputePassEncoder | null = null;
    let pipeline: GPUComputePipeline | null = null;
    let inSubmit = 0;
    let chunk = 16;
    for (const s of this.#steps) {
      if (s.kind === 'dispatch') {
        if (skip?.has(s.program)) continue;
        if (!pass) {
          pass = enc.beginComputePass();
          pipeline = null;
        }
        if (s.pipeline !== pipeline) pass.setPipeline((pipeline = s.pipeline));
        pass.setBindGroup(0, s.group);
        pass.dispatchWorkgroups(s.workgroups[0], s.workgroups[1], s.workgroups[2]);
        if (++inSubmit >= chunk) {
          pass.end();
          pass = null;
          device.queue.submit([enc.finish()]);
          enc = unwatchedEncoder(device);
          inSubmit = 0;
          chunk *= 2;
        }
      } else {
        pass?.end();
        pass = null;
        enc.copyBufferToBuffer(s.src, s.srcOffset, s.dst, s.dstOffset, s.size);
      }
    }
    pass?.end();
    this.#outputs.forEach((o, i) => enc.copyBufferToBuffer(o.buffer, 0, outs[i]!.buffer, 0, o.bytes));
    device.queue.submit([enc.finish()]);
    return outs.map((o) => o.tensor);
  }

  /** Frees the replay's device memory; weights read in place are not touched. */
  destroy(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#view.flush();
    for (const b of this.#owned) b.destroy();
  }
}

/**
 * Runs `fn(example)` once, recording what it sends to the device, and returns its outputs (a real forward) with a
 * replay of it. WebGPU only; throws GatedError('internal') when the forward cannot be replayed (see above).
 */
export function captureReplay(fn: (x: tf.Tensor) => tf.Tensor | tf.Tensor[], example: tf.Tensor): { outputs: tf.Tensor[]; replay: Replay } {
  const view = replayBackendView();
  if (!view) throw new GatedError('config', 'a replay needs the webgpu backend');
  if (view.profiling()) throw new GatedError('internal', 'a replay cannot be recorded while tfjs is profiling');
  if (captureState.sink) throw new GatedError('internal', 'a replay is already being recorded');
  if (tf.env().getBool('WEBGPU_ENGINE_COMPILE_ONLY')) throw new GatedError('internal', 'tfjs is compiling only: nothing would be dispatched');
  if (example.dtype === 'string' || example.dtype === 'complex64') throw new GatedError('config', `a replay takes numeric inputs, not ${example.dtype}`);
  const input = view.bufferOf(example);
  view.flush(); // earlier work reaches the queue before anything the capture submits
  const rec = new Recorder(view, input);
  let outputs: tf.Tensor[] = [];
  let locs: Loc[];
  captureState.sink = rec;
  try {
    const y = fn(example);
    outputs = Array.isArray(y) ? y : [y];
    locs = outputs.map((t) => rec.locOf(view.bufferOf(t)));
    view.flush();
  } catch (e) {
    captureState.sink = null;
    view.flush();
    tf.dispose(outputs);
    for (const b of rec.owned) b.destroy();
    throw e;
  } finally {
    captureState.sink = null;
  }
  try {
    const keep = rec.keepLive();
    return { outputs, replay: build(view, rec, example, locs, outputs, keep) };
  } catch (e) {
    for (const b of rec.owned) b.destroy();
    throw e;
  }
}

/**
 * Gives each value a buffer from its first step to its last, in step order: a buffer taken back after a step is
 * handed out again from the next one (the smallest free buffer that fits and is at most twice the size, else a
 * new one). The device orders each dispatch after the work that read or wrote the same buffer before it.
 */
function planValues(device: GPUDevice, rec: Recorder, owned: GPUBuffer[]): { values: number; buffers: number } {
  const starting = new Map<number, Value[]>();
  const ending = new Map<number, Value[]>();
  for (const v of rec.values) {
    if (v.first < 0) continue; // never used by a step
    const at = (m: Map<number, Value[]>, i: number) => m.get(i) ?? m.set(i, []).get(i)!;
    at(starting, v.first).push(v);
    if (Number.isFinite(v.last)) at(ending, v.last).push(v);
  }
  const free: GPUBuffer[] = []; // ascending size
  let buffers = 0;
  for (let i = 0; i < rec.steps.length; i++) {
    for (const v of starting.get(i) ?? []) {
      const k = free.findIndex((b) => b.size >= v.size && b.size <= 2 * v.size);
      if (k >= 0) v.buffer = free.splice(k, 1)[0]!;
      else {
        v.buffer = device.createBuffer({ size: v.size, usage: STORAGE() });
        owned.push(v.buffer);
        buffers++;
      }
    }
    for (const v of ending.get(i) ?? []) {
      const b = v.buffer!;
      const at = free.findIndex((f) => f.size >= b.size);
      free.splice(at < 0 ? free.length : at, 0, b);
    }
  }
  return { values: [...starting.values()].reduce((n, l) => n + l.length, 0), buffers };
}

function build(view: ReplayBackendView, rec: Recorder, example: tf.Tensor, outLocs: Loc[], outputs: tf.Tensor[], keep: { dataId: object; buffer: GPUBuffer }[]): Replay {
  const device = view.device;
  const owned = [...rec.owned];
  const inputBuffer = device.createBuffer({ size: Math.max(4, tf.util.sizeFromShape(example.shape) * 4), usage: STORAGE() });
  owned.push(inputBuffer);
  // the host's bytes, packed: one buffer for uniforms, one for everything else, each slice at the binding alignment
  const packed = (uniform: boolean) => {
    const align = uniform ? device.limits.minUniformBufferOffsetAlignment : device.limits.minStorageBufferOffsetAlignment;
    const offsets = new Map<number, number>();
    let size = 0;
    rec.consts.forEach((c, i) => {
      if (c.uniform !== uniform) return;
      offsets.set(i, size);
      size += Math.ceil(c.bytes.length / align) * align;
    });
    if (!size) return { buffer: null, offsets };
    const buffer = device.createBuffer({ size, usage: (uniform ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE) | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    owned.push(buffer);
    const all = new Uint8Array(size);
    for (const [i, o] of offsets) all.set(rec.consts[i]!.bytes, o);
    device.queue.writeBuffer(buffer, 0, all);
    return { buffer, offsets };
  };
  const uni = packed(true);
  const sto = packed(false);
  const plan = planValues(device, rec, owned);
  const at = (loc: Loc): { buffer: GPUBuffer; offset: number } => {
    if (loc.kind === 'input') return { buffer: inputBuffer, offset: 0 };
    if (loc.kind === 'value') return { buffer: loc.value.buffer!, offset: 0 };
    if (loc.kind !== 'const') return { buffer: loc.buffer, offset: 0 };
    const p = rec.consts[loc.index]!.uniform ? uni : sto;
    return { buffer: p.buffer!, offset: p.offsets.get(loc.index)! };
  };
  const steps: Step[] = rec.steps.map((s) => {
    if (s.kind === 'copy') {
      const a = at(s.src);
      const b = at(s.dst);
      return { kind: 'copy', src: a.buffer, srcOffset: a.offset + s.srcOffset, dst: b.buffer, dstOffset: b.offset + s.dstOffset, size: s.size };
    }
    const group = device.createBindGroup({
      layout: s.pipeline.getBindGroupLayout(0),
      entries: s.entries.map((e) => {
        const a = at(e.loc);
        return { binding: e.binding, resource: { buffer: a.buffer, offset: a.offset + e.offset, size: e.size } };
      }),
    });
    return { kind: 'dispatch', pipeline: s.pipeline, group, workgroups: s.workgroups, program: s.program };
  });
  // outputs read from where their contents ended; a replay's outputs must not alias its input
  const outs = outputs.map((t, i) => {
    const a = at(outLocs[i]!);
    if (a.offset !== 0) {
      const b = device.createBuffer({ size: tf.util.sizeFromShape(t.shape) * 4, usage: STORAGE() });
      owned.push(b);
      steps.push({ kind: 'copy', src: a.buffer, srcOffset: a.offset, dst: b, dstOffset: 0, size: b.size });
      return { buffer: b, shape: t.shape, dtype: t.dtype, bytes: b.size };
    }
    return { buffer: a.buffer, shape: t.shape, dtype: t.dtype, bytes: tf.util.sizeFromShape(t.shape) * 4 };
  });
  return new Replay(example.shape, example.dtype, view, steps, owned, inputBuffer, outs, keep, plan);
}

/**
 * Whether forwards may be replayed now: WebGPU, running programs (not tfjs's compile-only mode, where nothing is
 * dispatched), no gradient tape recording, not turned off (GATEDVISION_REPLAY=0).
 */
export function replayAvailable(): boolean {
  return tf.getBackend() === 'webgpu' && process.env.GATEDVISION_REPLAY !== '0' && !tf.engine().isTapeOn() && !tf.env().getBool('WEBGPU_ENGINE_COMPILE_ONLY');
}

/**
 * One model's replays, by input shape: a shape's first call runs as usual (programs compile, weights upload,
 * caches fill), its second is recorded, later ones are replayed. A replay whose weights changed is dropped and
 * recorded again; a forward that cannot be replayed keeps running as usual. At most `max` shapes are held, the
 * least recently used given back first.
 */
export class ReplayCache {
  readonly #entries = new Map<string, { calls: number; replay: Replay | null; refused: string | null }>();
  /** Forwards replayed, recorded, and run as usual since the cache was made. */
  readonly stats = { replayed: 0, recorded: 0, direct: 0 };

  constructor(readonly max = 2) {}

  /** `variant`: what else decides the forward's work besides the input's shape (see Backbone.forwardKey). */
  run(x: tf.Tensor, forward: (x: tf.Tensor) => tf.Tensor, variant = ''): tf.Tensor {
    if (!replayAvailable()) return this.#direct(x, forward);
    const key = `${variant}|${x.dtype}:${x.shape.join('x')}`;
    let e = this.#entries.get(key);
    this.#entries.delete(key);
    e ??= { calls: 0, replay: null, refused: null };
    this.#entries.set(key, e); // most recently used last
    this.#evict();
    e.calls++;
    if (e.replay && !e.replay.valid()) {
      e.replay.destroy();
      e.replay = null;
      e.calls = 1;
    }
    if (e.replay) {
      this.stats.replayed++;
      return e.replay.run(x)[0]!;
    }
    if (e.refused !== null || e.calls < 2) return this.#direct(x, forward);
    let rec: { outputs: tf.Tensor[]; replay: Replay };
    try {
      rec = captureReplay(forward, x);
    } catch (err) {
      if (!(err instanceof GatedError) || err.code !== 'internal') throw err;
      e.refused = err.message;
      return this.#direct(x, forward);
    }
    if (rec.outputs.length !== 1) {
      rec.replay.destroy();
      tf.dispose(rec.outputs.slice(1));
      e.refused = 'the forward returned several tensors';
      return rec.outputs[0]!;
    }
    e.replay = rec.replay;
    this.stats.recorded++;
    return rec.outputs[0]!;
  }

  /** Why replays were refused, by input shape (empty when none was). */
  refusals(): Record<string, string> {
    return Object.fromEntries([...this.#entries].filter(([, e]) => e.refused !== null).map(([k, e]) => [k, e.refused!]));
  }

  dispose(): void {
    for (const e of this.#entries.values()) e.replay?.destroy();
    this.#entries.clear();
  }

  #direct(x: tf.Tensor, forward: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
    this.stats.direct++;
    return forward(x);
  }

  #evict(): void {
    while (this.#entries.size > this.max) {
      const [k, e] = this.#entries.entries().next().value!;
      e.replay?.destroy();
      this.#entries.delete(k);
    }
  }
}
