/**
 * One job for a long-lived worker (the service's): a task on one input with a model that stays loaded between
 * jobs. Segment jobs go through the batch pipeline with a single case, so a job's outputs, previews, report and
 * manifest are exactly what the CLI would write.
 */
import { GatedError } from '../core/errors.ts';
import type { Limits } from '../core/limits.ts';
import { selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';

import { restoreFile } from './restore.ts';
import { segmentBatch, type SegFormat } from './segment.ts';
import { loadTaskModel, readTaskManifest, resolveModelDir, shippedModelsDir, type TaskModel } from './task_model.ts';

export interface TaskRequest {
  task: 'segment' | 'restore';
  model: string;
  input: string;
  outDir: string;
  format?: SegFormat;
  /** Test-time augmentation: restore averages the 8 flips and rotations of each slice, segment its flips. */
  tta?: boolean;
  device?: DeviceRequest;
  /** Reader caps for this input (pixels, zip entries, inflated size, file size). */
  limits?: Partial<Limits>;
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface TaskResult {
  outputs: string[];
  warnings: string[];
  ms: number;
  model: { name: string; sha256: string };
  device: string;
}

/** Models loaded once per worker, by name or folder. */
export class ModelCache {
  readonly #models = new Map<string, TaskModel>();
  async get(nameOrDir: string): Promise<TaskModel> {
    const key = resolveModelDir(nameOrDir);
    let m = this.#models.get(key);
    if (!m) {
      m = await loadTaskModel(nameOrDir);
      this.#models.set(key, m);
    }
    return m;
  }
  dispose(): void {
    for (const m of this.#models.values()) m.dispose();
    this.#models.clear();
  }
}

let device: string | undefined;

export async function runTask(req: TaskRequest, cache = new ModelCache()): Promise<TaskResult> {
  const t0 = Date.now();
  device ??= (await selectDevice(req.device ?? 'auto')).backend;
  const model = await cache.get(req.model);
  if (model.manifest.task !== req.task) throw new GatedError('config', `model '${req.model}' is a ${model.manifest.task} model; the job asked for ${req.task}`);
  if (req.task === 'restore') {
    const res = await restoreFile(req.input, req.outDir, model, { tta: req.tta ?? false, ...(req.limits ? { load: { limits: req.limits } } : {}), onSlices: (d, t) => req.onProgress?.(d, t, 'slices') });
    return { outputs: res.outputs, warnings: res.warnings, ms: Date.now() - t0, model: { name: model.manifest.name, sha256: model.sha256 }, device };
  }
  const summary = await segmentBatch([req.input], model, {
    outDir: req.outDir,
    formats: [req.format ?? 'nifti'],
    tta: req.tta ?? false,
    modelName: req.model,
    device,
    ...(req.limits ? { load: { limits: req.limits } } : {}),
    onSlices: (d, t) => req.onProgress?.(d, t, 'slices'),
  });
  const rec = summary.records[0];
  if (!rec) throw new GatedError('unsupported_format', 'the input holds nothing to process');
  if (rec.status !== 'done') throw new GatedError((rec.code as never) ?? 'internal', rec.message ?? 'the job failed');
  const entries = await readdir(req.outDir, { recursive: true, withFileTypes: true });
  const outputs = entries.filter((e) => e.isFile() && e.name !== 'manifest.jsonl').map((e) => join(relative(req.outDir, e.parentPath), e.name)).sort();
  return { outputs, warnings: [], ms: Date.now() - t0, model: { name: model.manifest.name, sha256: model.sha256 }, device };
}

/** The shipped models (each folder of models/ with a valid manifest). */
export async function listTaskModels(): Promise<Array<{ name: string; task: 'segment' | 'restore'; classes: string[]; description: string; sha256: string }>> {
  const root = shippedModelsDir();
  const out = [];
  for (const d of (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    try {
      const m = await readTaskManifest(`${root}/${d}`);
      out.push({ name: d, task: m.task, classes: m.classes, description: m.description, sha256: m.weights.sha256 });
    } catch {
      // not a model folder (e.g. samples/)
    }
  }
  return out;
}

