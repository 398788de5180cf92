/**
 * Runs decoding of untrusted input in a child process with a heap cap, a resident-memory watchdog and a
 * wall-clock limit, so that a codec crash, an endless loop or a runaway allocation fails one request
 * with a typed error instead of taking the caller down. Results come back over IPC with structured
 * clone, typed arrays included. With `mode: 'worker'` the task runs in a worker thread under the same
 * limits instead (sandbox_worker.ts): faster to start, for inputs that need no native decoder; one that
 * does is run again in a child process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { GatedError, reviveGatedError } from '../core/errors.ts';
import { resolveLimits, type Limits } from '../core/limits.ts';
export { sandboxModeFor } from './sandbox_guard.ts';
import type { SandboxMessage } from './sandbox_run.ts';
import { dropSpareWorker, NEEDS_PROCESS, packageRoot, prestartWorker, runInWorker } from './sandbox_worker.ts';
import { holdsTransferFiles, removeLeftovers, unpackLarge } from './transfer.ts';
import type { Progress } from './types.ts';

/**
 * 'process' (the default): a child process, which also contains native crashes (sharp). 'worker': a worker
 * thread of this process, for JavaScript/WebAssembly decoding only (DICOM, NIfTI, zips of them).
 */
export type SandboxMode = 'process' | 'worker';

export interface SandboxOptions {
  limits: Limits;
  onProgress?: Progress;
  signal?: AbortSignal;
  mode?: SandboxMode;
}

const here = dirname(fileURLToPath(import.meta.url));

let spare: { child: ChildProcess; heapMb: number } | undefined;

/**
 * Starts the child for the next runSandboxed call now, so that its start-up (Node and the modules of
 * `task`) overlaps the caller's own; the first call with the same heap cap takes it. It does not keep
 * this process alive: unused, it ends when this process does. The limits apply from the call on.
 */
export function prestartSandbox(task: string, limits: Limits = resolveLimits(), mode: SandboxMode = 'process'): void {
  if (mode === 'worker') return prestartWorker(task, limits);
  if (spare) return;
  const child = spawnChild(limits, task);
  child.on('error', () => undefined); // a failed start is reported by the call that takes the child
  child.unref();
  child.channel?.unref();
  (child.stderr as Socket | null)?.unref();
  spare = { child, heapMb: limits.sandboxHeapMb };
}

/** Ends a child or worker started by prestartSandbox that no call will take. */
export function dropSpare(): void {
  spare?.child.kill('SIGKILL');
  spare = undefined;
  dropSpareWorker();
}

/** Runs `task` (a name from sandbox_tasks.ts) with `payload` in a fresh child process or worker thread. */
export async function runSandboxed<T>(task: string, payload: unknown, opts: SandboxOptions): Promise<T> {
  if (opts.mode === 'worker') {
    const out = await runInWorker<T>(task, payload, opts);
    if (out !== NEEDS_PROCESS) return out;
  }
  return runInProcess<T>(task, payload, opts);
}

// --- internal ---

function runInProcess<T>(task: string, payload: unknown, opts: SandboxOptions): Promise<T> {
  const { limits } = opts;
  const child = takeSpare(limits) ?? spawnChild(limits);
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let peakRssMb = 0;
    let gotResult = false;
    const finish = (err: GatedError | null, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(watch);
      opts.signal?.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (err) {
        child.once('exit', () => removeLeftovers(child.pid));
        if (child.exitCode !== null || child.signalCode !== null) removeLeftovers(child.pid);
        reject(err);
      } else {
        // nothing is left to collect: the killed child's teardown does not hold this process
        child.unref();
        child.channel?.unref();
        (child.stderr as Socket | null)?.unref();
        resolve(value as T);
      }
    };
    const timer = setTimeout(() => {
      finish(new GatedError('timeout', `reading the input took longer than ${limits.sandboxTimeoutMs} ms`));
    }, limits.sandboxTimeoutMs);
    const watch = setInterval(() => {
      const rss = residentMb(child.pid);
      if (rss === null) return;
      peakRssMb = Math.max(peakRssMb, rss);
      if (rss > limits.sandboxRssMb) {
        finish(new GatedError('too_large', `decoding needed more than ${limits.sandboxRssMb} MiB of memory`, { details: { rssMb: Math.round(rss) } }));
      }
    }, 50);
    const onAbort = () => finish(new GatedError('timeout', 'cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString();
    });
    child.on('message', (msg: SandboxMessage) => {
      if (msg.type === 'progress') opts.onProgress?.(msg.done, msg.total, msg.what);
      else if (msg.type === 'result') {
        // A result without transfer files (written paths, findings) is complete as it arrived; the child's
        // teardown (unmapping a volume) need not be waited for.
        if (!holdsTransferFiles(msg.value)) {
          finish(null, msg.value as T);
          return;
        }
        // Collect only after the child has exited, so its memory and ours never peak together.
        const collect = () => {
          try {
            finish(null, unpackLarge(msg.value) as T);
          } catch (e) {
            finish(new GatedError('io_error', `could not collect the decoded data: ${(e as Error).message}`));
          }
        };
        if (child.exitCode !== null || child.signalCode !== null) collect();
        else {
          gotResult = true;
          child.once('exit', collect);
        }
      }
      else if (msg.type === 'error') finish(reviveGatedError(msg.error));
    });
    child.on('error', (e) => finish(new GatedError('internal', `could not start the decoder process: ${e.message}`, { cause: e })));
    child.on('exit', (code, signal) => {
      if (settled || gotResult) return;
      // V8 aborts with "heap limit" on OOM: report that as a size problem, everything else as a crash.
      if (/heap limit|Allocation failed|out of memory/i.test(stderr)) {
        finish(new GatedError('too_large', 'decoding ran out of memory (heap cap reached)'));
      } else {
        finish(new GatedError('worker_crashed', `the decoder process ended unexpectedly (${signal ?? `exit ${code}`})`));
      }
    });
    child.send({ task, payload });
  });
}

function takeSpare(limits: Limits): ChildProcess | undefined {
  const s = spare;
  spare = undefined;
  if (!s) return undefined;
  const c = s.child;
  if (s.heapMb !== limits.sandboxHeapMb || c.exitCode !== null || c.signalCode !== null || !c.connected) {
    c.kill('SIGKILL');
    return undefined;
  }
  c.ref();
  c.channel?.ref();
  (c.stderr as Socket | null)?.ref();
  return c;
}

function spawnChild(limits: Limits, preload?: string): ChildProcess {
  const js = join(here, 'sandbox_child.mjs');
  const ts = join(here, 'sandbox_child.ts');
  // A small young generation: decoding makes short-lived objects by the thousand (one DICOM parse per
  // file), and V8's default semi-spaces let them grow resident memory by tens of MiB before a scavenge.
  const execArgv = [`--max-old-space-size=${limits.sandboxHeapMb}`, '--max-semi-space-size=1', '--stack-size=4000'];
  let entry = js;
  if (!existsSync(js)) {
    // Source checkout: load TypeScript through tsx's ESM loader, resolved from this package, not the cwd.
    entry = ts;
    execArgv.push('--import', pathToFileURL(join(packageRoot(), 'node_modules', 'tsx', 'dist', 'loader.mjs')).href);
  }
  // The child never opens a network connection: without NODE_EXTRA_CA_CERTS, Node does not parse that
  // certificate bundle at start-up (40-70 ms per start on machines that set it).
  const { NODE_EXTRA_CA_CERTS: _certs, ...env } = process.env;
  return fork(entry, preload ? [preload] : [], {
    execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...env, NODE_OPTIONS: '' },
  });
}


function residentMb(pid: number | undefined): number | null {
  if (pid === undefined || process.platform !== 'linux') return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}
