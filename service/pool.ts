/**
 * The embedded job runner: a few long-lived child processes, each with a heap cap, each running one job at a
 * time with a wall-clock limit. A child that dies takes only its own job with it (re-queued, or failed as
 * poison after maxAttempts); a fresh child replaces it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceConfig } from './config.ts';
import type { Dispatcher } from './dispatch.ts';
import { crashAttempt, finishAttempt, type FinishDeps } from './finish.ts';
import { specFor, type JobOutcome } from './job_spec.ts';

type ChildMessage = { type: 'ready' } | { type: 'outcome'; id: string; attempt: number; outcome: JobOutcome };

interface Slot {
  child: ChildProcess;
  ready: boolean;
  job?: { id: string; attempt: number; timer: NodeJS.Timeout; timedOut: boolean };
}

const here = dirname(fileURLToPath(import.meta.url));

/** The command entry, from sources (service/) or from the bundle (dist/) alike. */
export function binPath(): string {
  return join(here, '..', 'bin', 'gatedvision.mjs');
}

export class WorkerPool implements Dispatcher {
  readonly #slots = new Set<Slot>();
  readonly #d: FinishDeps;
  readonly #config: ServiceConfig;
  #closing = false;
  #tick: NodeJS.Timeout | undefined;
  #quickDeaths = 0;

  readonly #modelDir: (name: string) => string | undefined;

  constructor(d: FinishDeps, config: ServiceConfig, modelDir: (name: string) => string | undefined = () => undefined) {
    this.#d = d;
    this.#config = config;
    this.#modelDir = modelDir;
  }

  start(): void {
    for (let i = 0; i < this.#config.workers; i++) this.#spawn();
    // jobs re-queued by a crash or left from a previous run are picked up even without a new submission
    this.#tick = setInterval(() => this.#pump(), 1000);
  }

  async submit(): Promise<void> {
    this.#pump();
  }

  ready(): boolean {
    return [...this.#slots].some((s) => s.ready);
  }

  /** Process ids of the children (for operators and the crash tests). */
  pids(): number[] {
    return [...this.#slots].map((s) => s.child.pid ?? 0);
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#tick);
    const exits = [...this.#slots].map((s) => new Promise<void>((r) => (s.child.exitCode !== null ? r() : s.child.once('exit', () => r()))));
    for (const s of this.#slots) {
      if (s.job) {
        clearTimeout(s.job.timer);
        // stopped by us, not crashed: the attempt does not count towards poison
        this.#d.store.release(s.job.id, s.job.attempt);
        s.job = undefined;
      }
      s.child.kill('SIGKILL');
    }
    await Promise.all(exits);
  }

  // --- internal ---

  #spawn(): void {
    const child = spawn(process.execPath, [`--max-old-space-size=${this.#config.workerHeapMb}`, binPath(), 'worker', '--child'], {
      stdio: ['ignore', 'ignore', process.env.GATEDVISION_DEBUG ? 'inherit' : 'ignore', 'ipc'],
      env: { ...process.env, GATEDVISION_WORKER_CHILD: '1' },
    });
    const slot: Slot = { child, ready: false };
    const born = Date.now();
    this.#slots.add(slot);
    child.on('message', (m: ChildMessage) => void this.#onMessage(slot, m));
    child.on('error', () => undefined);
    child.on('exit', (code, signal) => void this.#onExit(slot, born, code, signal));
  }

  async #onMessage(slot: Slot, m: ChildMessage): Promise<void> {
    if (m.type === 'ready') {
      slot.ready = true;
      this.#quickDeaths = 0;
      this.#pump();
      return;
    }
    const job = slot.job;
    if (!job || job.id !== m.id || job.attempt !== m.attempt) return;
    clearTimeout(job.timer);
    try {
      await finishAttempt(this.#d, m.id, m.attempt, m.outcome);
    } catch {
      this.#d.log.error('could not record a job outcome', { jobId: m.id, attempt: m.attempt });
    }
    slot.job = undefined;
    this.#pump();
  }

  async #onExit(slot: Slot, born: number, code: number | null, signal: string | null): Promise<void> {
    this.#slots.delete(slot);
    const job = slot.job;
    if (job) {
      clearTimeout(job.timer);
      if (job.timedOut) await finishAttempt(this.#d, job.id, job.attempt, { ok: false, error: { code: 'timeout', message: `the job ran longer than ${this.#config.jobTimeoutMs} ms` } });
      else await crashAttempt(this.#d, job.id, job.attempt, this.#config.maxAttempts);
    }
    if (this.#closing) return;
    this.#d.log.warn('worker exited', { exitCode: code ?? undefined, signal: signal ?? undefined });
    // a child that cannot even start (broken install) must not be respawned in a tight loop
    if (Date.now() - born < 5000) this.#quickDeaths++;
    const delay = Math.min(30_000, 200 * 2 ** Math.min(this.#quickDeaths, 8));
    setTimeout(() => !this.#closing && (this.#spawn(), undefined), this.#quickDeaths ? delay : 0).unref();
    this.#pump();
  }

  #pump(): void {
    if (this.#closing) return;
    for (const slot of this.#slots) {
      if (!slot.ready || slot.job || !slot.child.connected) continue;
      const job = this.#d.store.claimNext();
      if (!job) return;
      const spec = specFor(job, this.#d.paths, this.#config.device, this.#config.limits, this.#modelDir(job.model));
      const timer = setTimeout(() => {
        if (slot.job) slot.job.timedOut = true;
        slot.child.kill('SIGKILL');
      }, this.#config.jobTimeoutMs);
      slot.job = { id: job.id, attempt: job.attempts, timer, timedOut: false };
      this.#d.log.info('job started', { jobId: job.id, client: job.client, attempt: job.attempts, workerPid: slot.child.pid });
      slot.child.send({ type: 'run', spec });
    }
  }
}
