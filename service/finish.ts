/**
 * The one place where an attempt's outcome becomes the job's state: results are moved into place first, then
 * the guarded UPDATE decides; a stale attempt (the job was re-queued meanwhile) changes nothing.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { scrub, type ServiceLog } from './log.ts';
import type { Metrics } from './metrics.ts';
import { jobDir, resultDir, workDir, type DataPaths } from './paths.ts';
import { terminalStatus, type JobOutcome } from './job_spec.ts';
import type { Store } from './store.ts';

export interface FinishDeps {
  store: Store;
  paths: DataPaths;
  log: ServiceLog;
  metrics: Metrics;
}

/** `src`: where the attempt wrote its results, when not the pool's work-<attempt> folder (redis workers). */
export async function finishAttempt(d: FinishDeps, id: string, attempt: number, outcome: JobOutcome, src?: string): Promise<void> {
  const job = d.store.get(id);
  if (!job || job.status !== 'running' || job.attempts !== attempt) return;
  const ms = Date.now() - (job.startedAt ?? Date.now());
  if (outcome.ok) {
    const dst = resultDir(d.paths, id);
    await rm(dst, { recursive: true, force: true });
    await mkdir(d.paths.results, { recursive: true, mode: 0o700 });
    await rename(src ?? workDir(d.paths, id, attempt), dst);
    if (d.store.finishDone(id, attempt, outcome.outputs)) {
      d.metrics.jobEnded('done', ms);
      d.log.info('job done', { jobId: id, client: job.client, attempt, ms, outputs: outcome.outputs.length });
    }
  } else {
    const status = terminalStatus(outcome.error.code);
    if (d.store.finishError(id, attempt, status, outcome.error.code, scrub(outcome.error.message))) {
      d.metrics.jobEnded(status, ms);
      d.log.info(`job ${status}`, { jobId: id, client: job.client, attempt, ms, code: outcome.error.code });
    }
  }
  // the input and any work folders go as soon as the job has ended
  await rm(jobDir(d.paths, id), { recursive: true, force: true });
}

/** The worker died under an attempt: re-queue it, or fail it as poison after maxAttempts. */
export async function crashAttempt(d: FinishDeps, id: string, attempt: number, maxAttempts: number): Promise<void> {
  d.metrics.workerCrashed();
  const state = d.store.crashed(id, attempt, maxAttempts);
  if (!state) return;
  const job = d.store.get(id);
  d.log.warn('worker died under job', { jobId: id, client: job?.client, attempt, state });
  if (state === 'failed') {
    d.metrics.jobEnded('failed', 0);
    await rm(jobDir(d.paths, id), { recursive: true, force: true });
  } else {
    await rm(workDir(d.paths, id, attempt), { recursive: true, force: true });
  }
}
