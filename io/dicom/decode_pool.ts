/**
 * Compressed frames of a series decoded on several threads (pydicom and most readers use one core): the
 * reading thread parses each file and hands its codestreams out to helper threads (decoding the next file
 * itself whenever the helpers have enough queued); each helper has its own codec instances and decodes
 * into a frame buffer lent to it, which comes back and is placed by the caller exactly as the one-thread
 * path places it. Frame buffers are reused, so the decoded frames
 * leave nothing for the garbage collector.
 */
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { GatedError, reviveGatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import { startModuleWorker } from '../sandbox_worker.ts';
import type { VoxelArray } from '../volume.ts';
import { compiledCodec, preloadCodec, wasmKindOf, type FrameSpec } from './codecs.ts';
import { storedValues } from './pixels.ts';
import type { Codec } from './transfer_syntax.ts';

export interface FrameJob {
  id: number;
  codec: Codec;
  data: Uint8Array;
  spec: FrameSpec & { bitsStored: number };
  frame: number;
  frameBytes: number;
  out: ArrayBuffer;
}

/** The codecs decoded on threads: everything encapsulated but lossy JPEG (colour conversions live elsewhere). */
export const POOL_CODECS: ReadonlySet<Codec> = new Set(['jpeg-ls', 'jpeg-lossless', 'j2k', 'htj2k', 'rle']);

/** Fewer compressed frames than this are decoded on the reading thread: starting threads would cost more. */
export const POOL_MIN_FRAMES = 8;

/** Sent to each decoding thread before its first frame: the codec's compiled module, to instantiate ahead. */
export interface CodecMessage {
  codec: Codec;
  module: object;
}

/** Frames decoded on pool threads so far in this thread's pools (tests check that the pool path ran). */
export const poolCounters = { frames: 0 };

/** How many decoding threads `limits` asks for (1: none). */
export function decodeThreads(limits: Limits): number {
  return limits.decodeThreads > 0 ? limits.decodeThreads : Math.min(availableParallelism(), 4);
}

export class DecodePool {
  private readonly workers: { worker: Worker; busy: number }[] = [];
  private readonly pending = new Map<number, { resolve: (a: ArrayBuffer) => void; reject: (e: GatedError) => void; worker: number }>();
  private readonly spare: ArrayBuffer[] = [];
  private readonly spareData: ArrayBuffer[] = [];
  private next = 0;
  private ids = 0;
  private broken: GatedError | undefined;

  constructor(
    readonly size: number,
    limits: Limits,
    codec?: Codec,
  ) {
    const here = dirname(fileURLToPath(import.meta.url));
    for (let i = 0; i < size; i++) {
      // a decoding thread's own heap holds one codestream at a time; its codec memories are outside the heap
      const worker = startModuleWorker(here, 'decode_thread', { resourceLimits: { maxOldGenerationSizeMb: Math.min(limits.sandboxHeapMb, 1024), maxYoungGenerationSizeMb: 3 } });
      worker.unref();
      worker.on('message', (m: { id: number; out: ArrayBuffer; data: ArrayBuffer; error?: { code?: unknown; message?: unknown; details?: unknown } }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.spareData.push(m.data);
        this.pending.delete(m.id);
        this.workers[i]!.busy--;
        if (m.error) {
          this.spare.push(m.out);
          p.reject(reviveGatedError(m.error));
        } else {
          poolCounters.frames++;
          p.resolve(m.out);
        }
      });
      const fail = (e: GatedError) => {
        this.broken ??= e;
        for (const [id, p] of this.pending) {
          if (p.worker !== i) continue;
          this.pending.delete(id);
          p.reject(e);
        }
      };
      worker.on('error', (e: Error & { code?: string }) => {
        fail(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? new GatedError('too_large', 'a decoding thread ran out of memory (heap cap reached)') : new GatedError('worker_crashed', `a decoding thread failed: ${e.message}`));
      });
      worker.on('exit', (code) => fail(new GatedError('worker_crashed', `a decoding thread ended unexpectedly (exit ${code})`)));
      this.workers.push({ worker, busy: 0 });
    }
    // The codec is compiled once, here (on V8's background threads), and each thread only instantiates it;
    // this thread decodes too, so its own instance loads now as well, not at its first frame.
    const kind = codec && wasmKindOf(codec);
    if (kind) {
      preloadCodec(codec!);
      void compiledCodec(kind).then((module) => {
        if (module) for (const { worker } of this.workers) worker.postMessage({ codec, module } satisfies CodecMessage);
      });
    }
  }

  /** The stored values of one frame, in a buffer of the pool's: give it back with release() once placed. */
  async decode(codec: Codec, data: Uint8Array, spec: FrameJob['spec'], frame: number): Promise<VoxelArray> {
    if (this.broken) throw this.broken;
    const frameBytes = spec.rows * spec.columns * spec.samplesPerPixel * Math.max(1, spec.bitsAllocated / 8);
    let out = this.spare.pop();
    if (!out || out.byteLength < frameBytes) out = new ArrayBuffer(frameBytes);
    // the least busy thread; ties go round the pool
    let w = this.next++ % this.size;
    for (let i = 0; i < this.size; i++) if (this.workers[i]!.busy < this.workers[w]!.busy) w = i;
    const id = ++this.ids;
    const got = new Promise<ArrayBuffer>((resolve, reject) => this.pending.set(id, { resolve, reject, worker: w }));
    this.workers[w]!.busy++;
    const job: FrameJob = { id, codec, data, spec, frame, frameBytes, out };
    this.workers[w]!.worker.postMessage(job, [out, data.buffer as ArrayBuffer]);
    const buf = await got;
    return storedView(buf, frameBytes, spec);
  }

  /**
   * A buffer for one codestream, from those the threads gave back: copying codestreams into fresh
   * buffers left one garbage buffer per frame (and fresh pages to fault in) on the reading thread.
   */
  codestreamBuffer(n: number): Uint8Array {
    for (let i = this.spareData.length - 1; i >= 0; i--) {
      if (this.spareData[i]!.byteLength >= n) return new Uint8Array(this.spareData.splice(i, 1)[0]!, 0, n);
    }
    // room to spare: the next frames of a series are about as long
    return new Uint8Array(new ArrayBuffer(Math.ceil(n * 1.25)), 0, n);
  }

  /** Frames handed out and not yet back. */
  queued(): number {
    return this.pending.size;
  }

  release(a: VoxelArray): void {
    this.spare.push(a.buffer as ArrayBuffer);
  }

  close(): void {
    for (const { worker } of this.workers) {
      worker.removeAllListeners('exit');
      void worker.terminate();
    }
    this.workers.length = 0;
  }
}

/** A typed view on a decoded frame (its values were made stored values by the thread). */
function storedView(buf: ArrayBuffer, frameBytes: number, spec: FrameJob['spec']): VoxelArray {
  // bitsStored = bitsAllocated: the view only, nothing left to apply
  return storedValues(new Uint8Array(buf, 0, frameBytes), { ...spec, bitsStored: spec.bitsAllocated });
}

let warm: DecodePool | undefined;

/** Starts the threads while the headers are still being read (their start-up and codec loading overlap it). */
export function warmDecodePool(limits: Limits, codec?: Codec): void {
  const n = helperThreads(limits);
  if (!warm && n > 0) warm = new DecodePool(n, limits, codec);
  else if (codec) preloadCodec(codec); // the reading thread decodes alone: its codec loads while the headers are read
}

/** The warm pool, or a new one: the caller closes it. */
export function takeDecodePool(limits: Limits, codec?: Codec): DecodePool | undefined {
  const p = warm;
  warm = undefined;
  const n = helperThreads(limits);
  if (p && p.size === n) return p;
  p?.close();
  return n > 0 ? new DecodePool(n, limits, codec) : undefined;
}

/**
 * The reading thread decodes as well (whenever the helpers have enough queued), so n decoding threads
 * are n - 1 helpers: each helper costs ~35 MiB (a V8 isolate, its codec's compiled code and memory).
 */
function helperThreads(limits: Limits): number {
  return decodeThreads(limits) - 1;
}

/** Ends a warm pool no series took. */
export function dropWarmDecodePool(): void {
  warm?.close();
  warm = undefined;
}
