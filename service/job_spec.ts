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
  /** The model's name, as the client gave it. */
  model: string;
  /** The folder of a site model (from --models-dir); shipped models are found by name. */
  modelDir?: string;
  format: 'nifti' | 'dicom-seg' | 'png';
  /** Test-time augmentation; absent in specs queued before the field existed, which ran without it. */
  tta?: boolean;
  input: string;
  outDir: string;
  device: ServiceConfig['device'];
  /** Reader caps from the service configuration. */
  limits?: Partial<Limits>;
}

export type JobOutcome = { ok: true; outputs: string[]; ms: number } | { ok: false; error: { code: string; message: string } };

export function specFor(job: Job, paths: DataPaths, device: ServiceConfig['device'], limits?: Partial<Limits>, modelDir?: string): JobSpec {
  return { id: job.id, attempt: job.attempts, task: job.task, model: job.model, ...(modelDir ? { modelDir } : {}), format: job.format as JobSpec['format'], tta: job.tta, input: inputPath(paths, job.id, job.inputExt), outDir: workDir(paths, job.id, job.attempts), device, ...(limits ? { limits } : {}) };
}

/** What a worker keeps between jobs: loaded models, and the folder each site model name stands for. */
export interface JobModelCache {
  readonly dirs: Map<string, string>;
  dispose(): void;
}

/** Runs one job in this process with models kept in `cache` between jobs. */
export async function executeSpec(spec: JobSpec, cache: JobModelCache): Promise<JobOutcome> {
  const { runTask, ModelCache } = await import('../pipelines/run_task.ts');
  try {
    if (spec.modelDir) cache.dirs.set(spec.model, spec.modelDir);
    const r = await runTask({ task: spec.task, model: spec.model, input: spec.input, outDir: spec.outDir, format: spec.format, tta: spec.tta === true, device: spec.device, ...(spec.limits ? { limits: spec.limits } : {}) }, cache as unknown as InstanceType<typeof ModelCache>);
    // result names are served by exact match, so they must be relative to the work folder and stay inside it
    const outputs = r.outputs.map((o) => (isAbsolute(o) ? relative(spec.outDir, o) : o)).filter((o) => o && !o.startsWith('..') && !isAbsolute(o));
    return { ok: true, outputs, ms: r.ms };
  } catch (e) {
    const err = toGatedError(e, 'internal');
    return { ok: false, error: { code: err.code, message: err.message } };
  }
}

export async function newModelCache(): Promise<JobModelCache> {
  const { ModelCache } = await import('../pipelines/run_task.ts');
  // jobs name their model (runs are recorded under that name); a site model's name is looked up as its folder
  class NamedModelCache extends ModelCache implements JobModelCache {
    readonly dirs = new Map<string, string>();
    override get(nameOrDir: string) {
      return super.get(this.dirs.get(nameOrDir) ?? nameOrDir);
    }
  }
  return new NamedModelCache();
}

/** Bad input (4xx codes) rejects a job; our own failures (5xx) fail it. */
export function terminalStatus(code: string): 'rejected' | 'failed' {
  return isErrorCode(code) && ERROR_CODES[code].http < 500 ? 'rejected' : 'failed';
}
