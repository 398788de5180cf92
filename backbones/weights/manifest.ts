/**
 * Our own model format: a folder with `model.json` (arch, config, preprocessing, classes, format version,
 * sha256 of the weights) and `weights.safetensors` (our parameter names, float32). Loading verifies the
 * checksum and that every parameter fits before anything runs.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic.ts';
import { GatedError } from '../../core/errors.ts';
import type { Backbone } from '../_types.ts';
import { createFromConfig, familyOf, type Family } from '../_registry.ts';
import { readSafetensors, writeSafetensors } from './safetensors.ts';

export const MANIFEST_VERSION = 1;
export const MANIFEST_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.safetensors';

export interface Preprocessing {
  inputSize: [number, number];
  mean: number[];
  std: number[];
  interpolation: 'bilinear' | 'bicubic' | 'nearest';
}

export interface ModelManifest {
  format: 'gatedvision-model';
  version: typeof MANIFEST_VERSION;
  arch: string;
  family: Family;
  config: Record<string, unknown>;
  preprocessing: Preprocessing;
  classes: string[];
  weights: { file: string; sha256: string };
  source?: string;
}

/** Checks a parsed model.json field by field; the message lists every problem found. */
export function validateManifest(raw: unknown): ModelManifest {
  const problems: string[] = [];
  const m = (raw ?? {}) as Record<string, unknown>;
  const isNumArray = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) problems.push('not a JSON object');
  if (m.format !== 'gatedvision-model') problems.push(`format must be 'gatedvision-model'`);
  if (m.version !== MANIFEST_VERSION) problems.push(`version ${String(m.version)} is not supported (this build reads ${MANIFEST_VERSION})`);
  if (typeof m.arch !== 'string') problems.push('arch must be a string');
  if (!['vig', 'vig_h', 'her_seg', 'maxim', 'deit', 'activator'].includes(m.family as string)) problems.push(`family '${String(m.family)}' is unknown`);
  if (typeof m.config !== 'object' || m.config === null || Array.isArray(m.config)) problems.push('config must be an object');
  const pp = (m.preprocessing ?? {}) as Record<string, unknown>;
  const size = pp.inputSize as unknown[];
  if (!isNumArray(size) || size.length !== 2 || !size.every((x) => Number.isInteger(x) && (x as number) > 0)) problems.push('preprocessing.inputSize must be [h, w]');
  if (!isNumArray(pp.mean) || !isNumArray(pp.std)) problems.push('preprocessing.mean/std must be number arrays');
  if (!['bilinear', 'bicubic', 'nearest'].includes(pp.interpolation as string)) problems.push('preprocessing.interpolation must be bilinear, bicubic or nearest');
  if (!Array.isArray(m.classes) || !m.classes.every((c) => typeof c === 'string')) problems.push('classes must be a string array');
  const w = (m.weights ?? {}) as Record<string, unknown>;
  if (typeof w.file !== 'string' || /[\\/]/.test(w.file) || w.file.startsWith('.')) problems.push('weights.file must be a plain file name');
  if (typeof w.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(w.sha256)) problems.push('weights.sha256 must be 64 hex digits');
  const known = new Set(['format', 'version', 'arch', 'family', 'config', 'preprocessing', 'classes', 'weights', 'source']);
  for (const k of Object.keys(m)) if (!known.has(k)) problems.push(`unknown key '${k}'`);
  if (problems.length) throw new GatedError('unsupported_format', `model.json is not a valid gatedvision model manifest: ${problems.join('; ')}`);
  return m as unknown as ModelManifest;
}

export interface SaveOptions {
  arch: string;
  config: Record<string, unknown>;
  preprocessing: Omit<Preprocessing, 'interpolation'> & { interpolation?: Preprocessing['interpolation'] };
  classes: string[];
  source?: string;
}

export async function saveModel(dir: string, model: Backbone, opts: SaveOptions): Promise<ModelManifest> {
  const bytes = writeSafetensors(await model.params.export(), { arch: opts.arch });
  const manifest: ModelManifest = validateManifest({
    format: 'gatedvision-model',
    version: MANIFEST_VERSION,
    arch: opts.arch,
    family: familyOf(opts.arch),
    config: opts.config,
    preprocessing: { interpolation: 'bicubic', ...opts.preprocessing },
    classes: opts.classes,
    weights: { file: WEIGHTS_FILE, sha256: sha256(bytes) },
    ...(opts.source ? { source: opts.source } : {}),
  });
  await writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
  await writeFileAtomic(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

export async function loadModel(dir: string): Promise<{ manifest: ModelManifest; model: Backbone }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new GatedError('not_found', `no ${MANIFEST_FILE} in ${dir}`, { cause: e });
    throw new GatedError('unsupported_format', `${MANIFEST_FILE} is not valid JSON`, { cause: e });
  }
  const manifest = validateManifest(raw);
  const bytes = new Uint8Array(await readFile(join(dir, manifest.weights.file)));
  const digest = sha256(bytes);
  if (digest !== manifest.weights.sha256) throw new GatedError('corrupt_weights', `weights checksum mismatch: manifest ${manifest.weights.sha256}, file ${digest}`);
  const { tensors } = readSafetensors(bytes);
  const model = createFromConfig(manifest.family as Family, manifest.config, tensors);
  return { manifest, model };
}

// --- internal ---

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

