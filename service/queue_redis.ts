/**
 * Scale-out over BullMQ: the server stays the only writer of the SQLite store and follows the queue's events;
 * `gatedvision worker --queue` processes run the jobs from a data folder they share with the server. BullMQ job
 * ids are our job ids, so adding a job twice (after a crash) is a no-op. A worker that dies loses its lock;
 * the stalled job is counted as a crash here (re-queued, or failed as poison after maxAttempts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve, sep } from 'node:path';
import { Job as BullJob, Queue, QueueEvents, Worker, type ConnectionOptions } from 'bullmq';
import { GatedError } from '../core/errors.ts';
import type { ServiceConfig } from './config.ts';
import type { Dispatcher } from './dispatch.ts';
import { crashAttempt, finishAttempt, type FinishDeps } from './finish.ts';
import type { JobOutcome, JobSpec } from './job_spec.ts';
import { binPath } from './pool.ts';
import { inputPath, jobDir } from './paths.ts';
import type { Job } from './store.ts';

export const QUEUE_NAME = 'gatedvision-jobs';

interface QueueData {
  spec: Omit<JobSpec, 'attempt' | 'outDir'>;
  jobDir: string;
}

interface QueueResult {
  outcome: JobOutcome;
  dir: string;
}

export function redisConnection(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new GatedError('usage', 'the queue must be a redis://host:port URL');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new GatedError('usage', 'the queue must be a redis://host:port URL');
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

export class RedisDispatcher implements Dispatcher {
  readonly #queue: Queue;
  readonly #events: QueueEvents;
  readonly #d: FinishDeps;
  readonly #config: ServiceConfig;
  readonly #modelDir: (name: string) => string | undefined;
  #ready = false;
  #reconciler: NodeJS.Timeout | undefined;
  /** Event handling is serialised so the store sees a job's events in order. */
  #chain: Promise<void> = Promise.resolve();

  private constructor(d: FinishDeps, config: ServiceConfig, modelDir: (name: string) => string | undefined) {
    const connection = redisConnection(config.queueUrl!);
    this.#d = d;
    this.#config = config;
    this.#modelDir = modelDir;
    this.#queue = new Queue(QUEUE_NAME, { connection });
    this.#events = new QueueEvents(QUEUE_NAME, { connection });
  }

  static async start(d: FinishDeps, config: ServiceConfig, modelDir: (name: string) => string | undefined = () => undefined): Promise<RedisDispatcher> {
    const r = new RedisDispatcher(d, config, modelDir);
    r.#queue.on('error', () => undefined);
    r.#events.on('error', () => undefined);
    r.#events.on('active', ({ jobId }) => r.#serial(async () => void r.#d.store.markRunning(jobId)));
    r.#events.on('completed', ({ jobId, returnvalue }) => r.#serial(() => r.#completed(jobId, returnvalue as unknown as QueueResult)));
    r.#events.on('stalled', ({ jobId }) => r.#serial(() => r.#stalled(jobId)));
    r.#events.on('failed', ({ jobId, failedReason }) => r.#serial(() => r.#failed(jobId, failedReason)));
    try {
      await Promise.all([r.#queue.waitUntilReady(), r.#events.waitUntilReady()]);
    } catch (e) {
      await r.close();
      throw new GatedError('config', `cannot reach the queue (${(e as Error).message})`);
    }
    await r.#reconcile();
    r.#reconciler = setInterval(() => void r.#serial(() => r.#reconcile()), 10_000);
    r.#ready = true;
    return r;
  }

  async submit(job: Job): Promise<void> {
    const p = this.#d.paths;
    const modelDir = this.#modelDir(job.model);
    const data: QueueData = {
      // a site model travels as its folder, which worker hosts see at the same path (as they see the data folder)
      spec: { id: job.id, task: job.task, model: job.model, ...(modelDir ? { modelDir } : {}), format: job.format as JobSpec['format'], tta: job.tta, input: inputPath(p, job.id, job.inputExt), device: this.#config.device, limits: this.#config.limits },
      jobDir: jobDir(p, job.id),
    };
    await this.#queue.add('job', data, { jobId: job.id, attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: { age: 3600 } });
  }

  ready(): boolean {
    return this.#ready;
  }

  async close(): Promise<void> {
    this.#ready = false;
    clearInterval(this.#reconciler);
    await this.#chain;
    await Promise.allSettled([this.#events.close(), this.#queue.close()]);
  }

  // --- internal ---

  #serial(fn: () => Promise<void>): void {
    this.#chain = this.#chain.then(fn).catch(() => this.#d.log.error('queue event not recorded', {}));
  }

  async #completed(id: string, r: QueueResult | undefined): Promise<void> {
    let job = this.#d.store.get(id);
    if (!job || !r?.outcome) return;
    if (job.status === 'queued') job = this.#d.store.markRunning(id) ?? job;
    const dir = resolve(r.dir);
    if (!dir.startsWith(jobDir(this.#d.paths, id) + sep)) return;
    await finishAttempt(this.#d, id, job.attempts, r.outcome, dir);
  }

  async #stalled(id: string): Promise<void> {
    const job = this.#d.store.get(id);
    if (!job || job.status !== 'running') return;
    await crashAttempt(this.#d, id, job.attempts, this.#config.maxAttempts);
    if (this.#d.store.get(id)?.status === 'failed') await this.#queue.remove(id).catch(() => undefined);
  }

  async #failed(id: string, reason: string): Promise<void> {
    const job = this.#d.store.get(id);
    if (!job || (job.status !== 'running' && job.status !== 'queued')) return;
    if (job.status === 'queued') this.#d.store.markRunning(id);
    const j = this.#d.store.get(id)!;
    if (/stalled|died/i.test(reason)) {
      // a crash, not a verdict on the input: counted, then re-queued under the same id or failed as poison
      await crashAttempt(this.#d, id, j.attempts, this.#config.maxAttempts);
      const again = this.#d.store.get(id);
      if (again?.status === 'queued') {
        await this.#queue.remove(id).catch(() => undefined);
        await this.submit(again);
      }
      return;
    }
    await finishAttempt(this.#d, id, j.attempts, { ok: false, error: { code: 'internal', message: 'the worker failed' } });
  }

  /** Brings the store and the queue together after either side was down. */
  async #reconcile(): Promise<void> {
    const store = this.#d.store;
    for (const id of store.idsWithStatus('queued', 'running')) {
      const bull = await BullJob.fromId(this.#queue, id);
      if (!bull) {
        const job = store.get(id)!;
        if (job.status === 'running') await crashAttempt(this.#d, id, job.attempts, this.#config.maxAttempts);
        const again = store.get(id);
        if (again?.status === 'queued') await this.submit(again);
        continue;
      }
      const state = await bull.getState();
      if (state === 'completed') await this.#completed(id, bull.returnvalue as QueueResult);
      else if (state === 'failed') await this.#failed(id, bull.failedReason ?? '');
      else if (state === 'active') store.markRunning(id);
    }
  }
}

export interface RedisWorkerOptions {
  url: string;
  concurrency: number;
  device: ServiceConfig['device'];
  /** Lock of a running job; a worker that dies loses it after this long and the job is handed on. */
  lockMs?: number;
  /** Heap cap of each job process. */
  heapMb?: number;
}

/**
 * Runs jobs from the queue until SIGTERM/SIGINT. Each concurrency slot runs its jobs in a child process (the same
 * one the embedded pool uses), so inference never holds this event loop and the job locks keep being renewed; a
 * child that dies fails only its job, which the server counts as a crash.
 */
export async function runRedisWorker(o: RedisWorkerOptions): Promise<void> {
  const lockDuration = o.lockMs ?? 30_000;
  const idle: ChildRunner[] = [];
  const all: ChildRunner[] = [];
  const worker = new Worker<QueueData, QueueResult>(
    QUEUE_NAME,
    async (job) => {
      const runner = idle.pop() ?? (all.push(new ChildRunner(o.heapMb ?? 4096)), all.at(-1)!);
      try {
        const dir = join(job.data.jobDir, `work-${randomBytes(8).toString('hex')}`);
        const outcome = await runner.run({ ...job.data.spec, attempt: 0, outDir: dir, device: o.device === 'auto' ? job.data.spec.device : o.device });
        return { outcome, dir };
      } finally {
        idle.push(runner);
      }
    },
    { connection: redisConnection(o.url), concurrency: o.concurrency, lockDuration, stalledInterval: lockDuration, maxStalledCount: 1000 },
  );
  worker.on('error', () => undefined);
  await worker.waitUntilReady();
  process.stderr.write(`gatedvision worker ready (${QUEUE_NAME})\n`);
  await new Promise<void>((res) => {
    process.once('SIGTERM', () => res());
    process.once('SIGINT', () => res());
  });
  await worker.close();
  for (const r of all) r.stop();
}

/** One long-lived job child (models stay loaded); restarted after it dies. */
class ChildRunner {
  #child: ChildProcess | undefined;
  #ready: Promise<ChildProcess> | undefined;
  constructor(readonly heapMb: number) {}

  async run(spec: JobSpec): Promise<JobOutcome> {
    const child = await this.#start();
    return new Promise<JobOutcome>((resolve, reject) => {
      const onMessage = (m: { type: string; id?: string; outcome?: JobOutcome }) => {
        if (m.type !== 'outcome' || m.id !== spec.id) return;
        done();
        resolve(m.outcome!);
      };
      const onExit = () => {
        done();
        reject(new Error('the job process died'));
      };
      const done = () => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ type: 'run', spec });
    });
  }

  stop(): void {
    this.#child?.kill('SIGKILL');
  }

  #start(): Promise<ChildProcess> {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null && this.#ready) return this.#ready;
    const child = spawn(process.execPath, [`--max-old-space-size=${this.heapMb}`, binPath(), 'worker', '--child'], { stdio: ['ignore', 'ignore', process.env.GATEDVISION_DEBUG ? 'inherit' : 'ignore', 'ipc'] });
    this.#child = child;
    child.on('error', () => undefined);
    this.#ready = new Promise((resolve, reject) => {
      child.once('message', () => resolve(child));
      child.once('exit', () => reject(new Error('the job process died before it was ready')));
    });
    return this.#ready;
  }
}
