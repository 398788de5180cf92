/**
 * The models a service offers: the shipped ones and, with `--models-dir`, a site's own task models (one
 * folder each, as `gatedvision train` writes them). Clients name models only; the folder a name stands for
 * stays on the server side and reaches the workers in the job spec. The catalogue is read once at start-up,
 * so a broken or clashing site model stops the server there, not in the middle of a patient's job.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { GatedError } from '../core/errors.ts';
import type { Task } from './store.ts';

export interface ModelInfo {
  name: string;
  task: Task;
  classes: string[];
  description: string;
  sha256: string;
  /** `shipped` with the package, or `site` (from the models folder). */
  source: 'shipped' | 'site';
}

export interface ModelCatalogue {
  list(): ModelInfo[];
  /** The folder of a site model; undefined for a shipped one (workers find those by name). */
  dirOf(name: string): string | undefined;
}

/** Names that can be asked for through the API (the same rule as model names on the command line). */
const NAME = /^[a-z0-9][a-z0-9_-]*$/;

export async function loadCatalogue(modelsDir?: string): Promise<ModelCatalogue> {
  const { listTaskModels } = await import('../pipelines/run_task.ts');
  const shipped: ModelInfo[] = (await listTaskModels()).map((m) => ({ ...m, source: 'shipped' as const }));
  const dirs = new Map<string, string>();
  const site: ModelInfo[] = [];
  if (modelsDir !== undefined) {
    const root = resolve(modelsDir);
    if (!(await stat(root).then((s) => s.isDirectory(), () => false))) throw new GatedError('config', `--models-dir ${modelsDir} is not a folder`);
    const taken = new Set(shipped.map((m) => m.name));
    for (const name of (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
      const dir = join(root, name);
      // a folder without model.json is not a model (yet): training writes it only once a best epoch exists
      if (!existsSync(join(dir, 'model.json'))) continue;
      if (!NAME.test(name)) throw new GatedError('config', `site model folder '${name}' in ${root} is not a usable model name (lower-case letters, digits, _ and -); rename the folder`);
      if (taken.has(name)) throw new GatedError('config', `site model '${name}' in ${root} has the name of a shipped model; rename its folder`);
      site.push(await siteModel(dir, name));
      dirs.set(name, dir);
    }
  }
  const all = [...shipped, ...site];
  return { list: () => all, dirOf: (name) => dirs.get(name) };
}

// --- internal ---

async function siteModel(dir: string, name: string): Promise<ModelInfo> {
  const { readTaskManifest } = await import('../pipelines/task_model.ts');
  let m;
  try {
    m = await readTaskManifest(dir);
  } catch (e) {
    throw new GatedError('config', `site model '${name}': ${(e as Error).message}`, { cause: e });
  }
  // the workers verify the weights again when they load them; checking here keeps a bad copy from being offered
  const digest = await sha256File(join(dir, m.weights.file)).catch((e: unknown) => {
    throw new GatedError('config', `site model '${name}': its weights file ${m.weights.file} cannot be read`, { cause: e });
  });
  if (digest !== m.weights.sha256) throw new GatedError('config', `site model '${name}': ${m.weights.file} does not match the sha256 in its model.json; copy the model folder again`);
  return { name, task: m.task, classes: m.classes, description: m.description, sha256: m.weights.sha256, source: 'site' };
}

function sha256File(path: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path).on('error', rej).on('data', (c) => h.update(c)).on('end', () => res(h.digest('hex')));
  });
}
