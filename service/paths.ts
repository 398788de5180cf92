/**
 * Where the service keeps files. Every name under the data folder is made here from random job ids; nothing
 * a client sends (upload names, DICOM identifiers, zip entry names) ever becomes part of a path.
 */
import { join, resolve, sep } from 'node:path';
import { GatedError } from '../core/errors.ts';

export interface DataPaths {
  root: string;
  db: string;
  /** Uploads still arriving. */
  tmp: string;
  /** One folder per unfinished job: its input and per-attempt work folders. */
  jobs: string;
  /** One folder per finished job, kept until the result TTL. */
  results: string;
}

export function dataPaths(root: string): DataPaths {
  const r = resolve(root);
  return { root: r, db: join(r, 'service.db'), tmp: join(r, 'tmp'), jobs: join(r, 'jobs'), results: join(r, 'results') };
}

const JOB_ID = /^[0-9a-f]{32}$/;

export function isJobId(id: string): boolean {
  return JOB_ID.test(id);
}

export function jobDir(p: DataPaths, id: string): string {
  return inside(p.jobs, id);
}

export function inputPath(p: DataPaths, id: string, ext: string): string {
  return join(jobDir(p, id), `input${ext}`);
}

export function workDir(p: DataPaths, id: string, attempt: number): string {
  return join(jobDir(p, id), `work-${attempt}`);
}

export function resultDir(p: DataPaths, id: string): string {
  return inside(p.results, id);
}

/** A result file by a name taken from the job's own output list; a second guard against escaping the folder. */
export function resultFile(p: DataPaths, id: string, name: string): string {
  const dir = resultDir(p, id);
  const full = resolve(dir, name);
  if (!full.startsWith(dir + sep)) throw new GatedError('not_found', 'no such result file');
  return full;
}

// --- internal ---

function inside(base: string, id: string): string {
  if (!isJobId(id)) throw new GatedError('not_found', 'no such job');
  return join(base, id);
}
