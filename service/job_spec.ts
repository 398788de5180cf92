/** What a worker is told to do for one attempt of a job, and what it answers. Plain JSON: it crosses IPC and redis. */
import { isAbsolute, relative } from 'node:path';
import { ERROR_CODES, isErrorCode, toGatedError } from '../core/errors.ts';
import type { Limits } from '../core/limits.ts';
import type { ServiceConfig } from './config.ts';
import { inputPath, workDir, type DataPaths } from './paths.ts';
import type { Job, Task } from './store.ts';

export interface JobSpec {
  id: string;
  attempt: number;
  task: Task;
  model: string;
  format: 'nifti' | 'dicom-seg' | 'png';
  input: string;
  outDir: string;
  device: ServiceConfig['device'];
  /** Reader caps from the service configuration. */
  limits?: Partial<Limits>;
}

export type JobOutcome = { ok: true; outputs: string[]; ms: number } | { ok: false; error: { code: string; message: string } };

export function specFor(job: Job, paths: DataPaths, device: ServiceConfig['device'], limits?: Partial<Limits>): JobSpec {
  return { id: job.id, attempt: job.attempts, task: job.task, model: job.model, format: job.format as JobSpec['format'], input: inputPath(paths, job.id, job.inputExt), outDir: workDir(paths, job.id, job.attempts), device, ...(limits ? { limits } : {}) };
}

/** Runs one job in this process with models kept in `cache` between jobs. */
export async function executeSpec(spec: JobSpec, cache: unknown): Promise<JobOutcome> {
  const { runTask, ModelCache } = await import('../pipelines/run_task.ts');
  try {
    const r = await runTask({ task: spec.task, model: spec.model, input: spec.input, outDir: spec.outDir, format: spec.format, device: spec.device, ...(spec.limits ? { limits: spec.limits } : {}) }, cache as InstanceType<typeof ModelCache>);
    // result names are served by exact match, so they must be relative to the work folder and stay inside it
    const outputs = r.outputs.map((o) => (isAbsolute(o) ? relative(spec.outDir, o) : o)).filter((o) => o && !o.startsWith('..') && !isAbsolute(o));
    return { ok: true, outputs, ms: r.ms };
  } catch (e) {
    const err = toGatedError(e, 'internal');
    return { ok: false, error: { code: err.code, message: err.message } };
  }
}

export async function newModelCache(): Promise<{ dispose(): void }> {
  const { ModelCache } = await import('../pipelines/run_task.ts');
  return new ModelCache();
}

/** Bad input (4xx codes) rejects a job; our own failures (5xx) fail it. */
export function terminalStatus(code: string): 'rejected' | 'failed' {
  return isErrorCode(code) && ERROR_CODES[code].http < 500 ? 'rejected' : 'failed';
}
