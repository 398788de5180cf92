/**
 * Restoration batches made in a worker thread. The loop asks for batch k+1 before it issues step k, so the
 * noise and crops of the next batch are drawn while the main thread feeds the device. On the main thread that
 * work (about 0.25 s for 128 patches of 128²) adds to every step whenever the host, not the device, bounds it
 * (the loop's log then shows a wait near zero). Same batches as on the main thread: the thread gets the
 * generator state and returns the state after the batch.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { reviveGatedError } from '../../core/errors.ts';
import { startModuleWorker } from '../../io/sandbox_worker.ts';
import type { BatchThreadData } from './restore_batch_thread.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** The thread itself failed (could not start, crashed or exited); the batch can be made on the main thread instead. */
export class BatchThreadFailure extends Error {}

interface Pending {
  resolve: (b: { x: Float32Array; y: Float32Array; state: number }) => void;
  reject: (e: Error) => void;
}

export class BatchThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: BatchThreadFailure | null = null;

  /** Moves the images' planes into shared memory in place (the thread reads them there; nothing is copied twice). */
  constructor(data: BatchThreadData) {
    for (const im of data.images) {
      im.clean = toShared(im.clean);
      if (im.noisy) im.noisy = toShared(im.noisy);
    }
    this.worker = startModuleWorker(here, 'restore_batch_thread', { workerData: data });
    this.worker.on('message', (m: { id: number; x?: Float32Array; y?: Float32Array; state?: number; error?: { code?: unknown; message?: unknown } }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(reviveGatedError(m.error));
      else p.resolve({ x: m.x!, y: m.y!, state: m.state! });
    });
    this.worker.on('error', (e) => this.fail(`the batch thread failed: ${e.message}`));
    this.worker.on('exit', (code) => this.fail(`the batch thread exited (code ${code})`));
  }

  /** The batch the generator at `state` gives, and the generator's state after it. */
  make(state: number): Promise<{ x: Float32Array; y: Float32Array; state: number }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, state });
    });
  }

  async close(): Promise<void> {
    this.failure ??= new BatchThreadFailure('the batch thread was closed');
    await this.worker.terminate();
  }

  private fail(message: string): void {
    this.failure ??= new BatchThreadFailure(message);
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }
}

function toShared(a: Float32Array): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const s = new Float32Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}
