/**
 * Decoding in a worker thread: what sandbox.ts does with a child process, without starting a second Node
 * process (its start-up is most of a small conversion's time). Only for JavaScript and WebAssembly
 * decoders, which cannot take the process down: a WebAssembly trap is an exception, an endless loop is
 * stopped by terminate(). Native decoders are refused in the thread (sandbox_guard.ts) and the task
 * then reports 'needs_process'. The limits are the child's: wall-clock timeout, heap cap, and a watchdog
 * on the process's resident memory (ArrayBuffers and WebAssembly memories are outside the V8 heap).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { GatedError, reviveGatedError } from '../core/errors.ts';
import type { Limits } from '../core/limits.ts';
import type { SandboxMessage } from './sandbox_run.ts';
import type { SandboxOptions } from './sandbox.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** What a worker run ends with besides a value or a typed error: the input needs a child process. */
export const NEEDS_PROCESS = Symbol('needs process');

let spare: { worker: Worker; heapMb: number; exited: boolean } | undefined;

/** Starts the worker for the next runInWorker call now, loading the modules of `task` (see prestartSandbox). */
export function prestartWorker(task: string, limits: Limits): void {
  if (spare) return;
  const worker = spawnWorker(limits, task);
  const s = { worker, heapMb: limits.sandboxHeapMb, exited: false };
  worker.on('error', () => undefined); // a failed start is reported by the call that takes the worker
  worker.once('exit', () => {
    s.exited = true;
  });
  worker.unref();
  spare = s;
}

/** Ends a worker started by prestartWorker that no call will take. */
export function dropSpareWorker(): void {
  void spare?.worker.terminate();
  spare = undefined;
}

/** Runs `task` in a fresh worker thread; NEEDS_PROCESS when the input turned out to need a native decoder. */
export function runInWorker<T>(task: string, payload: unknown, opts: SandboxOptions): Promise<T | typeof NEEDS_PROCESS> {
  const { limits } = opts;
  const worker = takeSpare(limits) ?? spawnWorker(limits);
  // Growth over this is the task's: ArrayBuffers and WebAssembly memories count here, not in the heap cap.
  const baseMb = residentMb();
  return new Promise<T | typeof NEEDS_PROCESS>((resolve, reject) => {
    let settled = false;
    const finish = (err: GatedError | null, value?: T | typeof NEEDS_PROCESS) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(watch);
      opts.signal?.removeEventListener('abort', onAbort);
      // the result is in (or the run failed): ending the thread frees its memory; nothing waits for that
      worker.unref();
      void worker.terminate();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => {
      finish(new GatedError('timeout', `reading the input took longer than ${limits.sandboxTimeoutMs} ms`));
    }, limits.sandboxTimeoutMs);
    const watch = setInterval(() => {
      const grown = residentMb() - baseMb;
      if (grown > limits.sandboxRssMb) {
        finish(new GatedError('too_large', `decoding needed more than ${limits.sandboxRssMb} MiB of memory`, { details: { rssMb: Math.round(grown) } }));
      }
    }, 50);
    const onAbort = () => finish(new GatedError('timeout', 'cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (msg: SandboxMessage) => {
      if (msg.type === 'progress') opts.onProgress?.(msg.done, msg.total, msg.what);
      else if (msg.type === 'result') finish(null, msg.value as T);
      else if (msg.type === 'error') finish(reviveGatedError(msg.error));
      else if (msg.type === 'needs_process') finish(null, NEEDS_PROCESS);
    });
    worker.on('error', (e: Error & { code?: string }) => {
      if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') finish(new GatedError('too_large', 'decoding ran out of memory (heap cap reached)'));
      else finish(new GatedError('worker_crashed', `the decoder thread failed: ${e.message}`));
    });
    worker.on('exit', (code) => finish(new GatedError('worker_crashed', `the decoder thread ended unexpectedly (exit ${code})`)));
    worker.postMessage({ task, payload });
  });
}

// --- internal ---

function takeSpare(limits: Limits): Worker | undefined {
  const s = spare;
  spare = undefined;
  if (!s) return undefined;
  if (s.heapMb !== limits.sandboxHeapMb || s.exited) {
    void s.worker.terminate();
    return undefined;
  }
  s.worker.removeAllListeners('error');
  s.worker.removeAllListeners('exit');
  s.worker.ref();
  return s.worker;
}

function spawnWorker(limits: Limits, preload?: string): Worker {
  const resourceLimits = {
    maxOldGenerationSizeMb: limits.sandboxHeapMb,
    // a small young generation (1 MiB semi-spaces), as for the child process: thousands of short-lived
    // parse objects otherwise grow resident memory by tens of MiB before a scavenge
    maxYoungGenerationSizeMb: 3,
    stackSizeMb: 4,
  };
  // argv as the child process gets it, so a task sees what it was started for the same way in both modes
  return startModuleWorker(here, 'sandbox_worker_entry', { workerData: preload ? { preload } : {}, argv: preload ? [preload] : [], resourceLimits });
}

/**
 * A worker thread running module `name` of folder `dir`: the bundle's `name.cjs` (or `name.mjs`) when
 * built (dist/ is flat), else the TypeScript source through tsx, resolved from this package, not the cwd.
 */
export function startModuleWorker(dir: string, name: string, options: WorkerOptions): Worker {
  for (const ext of ['cjs', 'mjs']) {
    const js = join(dir, `${name}.${ext}`);
    if (existsSync(js)) return new Worker(js, options);
  }
  const api = pathToFileURL(join(packageRoot(), 'node_modules', 'tsx', 'dist', 'esm', 'api', 'index.mjs')).href;
  const entry = pathToFileURL(join(dir, `${name}.ts`)).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { ...options, eval: true });
}

/** The checkout's root (where node_modules/tsx is), for running the TypeScript sources without a build. */
export function packageRoot(): string {
  let dir = here;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'node_modules', 'tsx'))) return dir;
    dir = dirname(dir);
  }
  throw new GatedError('missing_dependency', 'tsx is needed to run the TypeScript sources (npm ci)');
}

function residentMb(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}
