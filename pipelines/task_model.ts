/**
 * A task model: a registered backbone plus a head, with everything a pipeline needs to use it correctly
 * kept in its manifest (task, classes, input channels and 2.5D context, normalisation, size multiple) — never
 * hard-coded in the pipeline. On disk: `model.json` + `weights.safetensors` (backbone parameters under
 * 'backbone.', head parameters under 'head.'), verified by sha256 before anything runs. A name without a
 * path separator resolves to the shipped models folder.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { ParamStore } from '../backbones/_params.ts';
import { createFromConfig, familyOf, getVariant, resolveConfig } from '../backbones/_registry.ts';
import type { Backbone } from '../backbones/_types.ts';
import { inTraining } from '../backbones/layers/drop_path.ts';
import { readSafetensors, writeSafetensors } from '../backbones/weights/safetensors.ts';
import type { StateDict } from '../backbones/weights/tensors.ts';
import { writeFileAtomic } from '../core/atomic.ts';
import { GatedError } from '../core/errors.ts';
import { getHead, NATIVE_HEAD, resolveHeadConfig } from '../heads/_registry.ts';
import type { Head } from '../heads/_types.ts';
import { ReplayCache } from '../kernels/webgpu_replay.ts';
import type { Normalization } from './preprocess.ts';

export const TASK_MODEL_FORMAT = 'gatedvision-task-model';
export const TASK_MODEL_VERSION = 1;
const MANIFEST = 'model.json';
const WEIGHTS = 'weights.safetensors';

export type Task = 'segment' | 'restore';

export interface TaskInput {
  /** Channels the network sees: (2·context + 1) slices × components. */
  channels: number;
  /** 2.5D: neighbouring slices on each side stacked as channels (0 = single slice). */
  context: number;
  /** Slice height and width are padded to a multiple of this. */
  multipleOf: number;
  normalization: Normalization;
  /** Reorient to the closest RAS grid before slicing (axial slices). */
  canonical: boolean;
  /** In-plane spacing [x, y] in mm the model works at; slices are resampled to it and the result back. */
  spacing?: [number, number];
}

export interface TaskSpec {
  name: string;
  task: Task;
  description: string;
  backbone: { arch: string; config: Record<string, unknown> };
  head: { kind: string; config: Record<string, unknown> };
  input: TaskInput;
  /** Segment: label names, index 0 the background. Restore: empty. */
  classes: string[];
  /** Segment: clean-up applied to every label map (3D, per class). */
  postprocess?: { largestComponent?: boolean; fillHoles?: boolean };
}

export interface TaskManifest extends TaskSpec {
  format: typeof TASK_MODEL_FORMAT;
  version: typeof TASK_MODEL_VERSION;
  weights: { file: string; sha256: string };
  /** Model card: training data, command, metrics. */
  card?: Record<string, unknown>;
}

export interface TaskModel {
  readonly manifest: TaskManifest;
  /** sha256 of the weights file (empty for a model that was never saved). */
  readonly sha256: string;
  /** x [B, H, W, channels] → logits [B, H, W, classes] or the restored image [B, H, W, C]. */
  predict(x: tf.Tensor4D): tf.Tensor4D;
  /** Recorded forwards by batch shape (WebGPU inference, kernels/webgpu_replay.ts). */
  readonly replays: ReplayCache;
  variables(): tf.Variable[];
  /** Current weights by their saved names. */
  exportWeights(): Promise<StateDict>;
  /** Loads weights by name; returns the model's parameters the weights did not hold (only with `allowMissing`:
   *  a model grown from a smaller one, whose new parameters keep their initialisation). */
  loadWeights(w: StateDict, opts?: { allowMissing?: boolean }): string[];
  dispose(): void;
}

/** Builds a model with fresh weights; the spec is completed with defaults and checked. */
export function buildTaskModel(spec: TaskSpec, seed = 0): TaskModel {
  const full = completeSpec(spec);
  return new Assembled({ ...full, format: TASK_MODEL_FORMAT, version: TASK_MODEL_VERSION, weights: { file: WEIGHTS, sha256: '0'.repeat(64) } }, '', seed);
}

export async function saveTaskModel(dir: string, model: TaskModel, card?: Record<string, unknown>): Promise<TaskManifest> {
  const bytes = writeSafetensors(await model.exportWeights(), { name: model.manifest.name });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const { card: oldCard, ...rest } = model.manifest;
  const cardOut = card ?? oldCard;
  const manifest: TaskManifest = { ...rest, weights: { file: WEIGHTS, sha256 }, ...(cardOut ? { card: cardOut } : {}) };
  await writeFileAtomic(join(dir, WEIGHTS), bytes);
  await writeFileAtomic(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** The folder a model name or path refers to. */
export function resolveModelDir(nameOrDir: string): string {
  if (/[\\/]/.test(nameOrDir) || nameOrDir.startsWith('.')) return resolve(nameOrDir);
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(nameOrDir)) throw new GatedError('unknown_name', `'${nameOrDir}' is not a model name (lower-case letters, digits, _ and -) nor a folder path`);
  return join(shippedModelsDir(), nameOrDir);
}

/** Folder of the models shipped with the package (found from this module, source or bundled). */
export function shippedModelsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'models'))) return join(dir, 'models');
    dir = dirname(dir);
  }
  throw new GatedError('not_found', 'the shipped models folder was not found next to the package');
}

export async function readTaskManifest(dir: string): Promise<TaskManifest> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new GatedError('not_found', `no model at ${dir} (${MANIFEST} missing)`, { cause: e });
    throw new GatedError('unsupported_format', `${MANIFEST} in ${dir} is not valid JSON`, { cause: e });
  }
  return validateTaskManifest(raw);
}

export async function loadTaskModel(nameOrDir: string): Promise<TaskModel> {
  const dir = resolveModelDir(nameOrDir);
  const manifest = await readTaskManifest(dir);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(join(dir, manifest.weights.file)));
  } catch (e) {
    throw new GatedError('not_found', `the weights file ${manifest.weights.file} of model '${manifest.name}' is missing`, { cause: e });
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== manifest.weights.sha256) throw new GatedError('corrupt_weights', `weights of model '${manifest.name}' do not match the manifest (sha256 ${digest.slice(0, 12)}…, expected ${manifest.weights.sha256.slice(0, 12)}…)`);
  const { tensors } = readSafetensors(bytes);
  const model = new Assembled(manifest, digest, 0);
  try {
    model.loadWeights(tensors);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** Checks a parsed model.json field by field; the message lists every problem found. */
export function validateTaskManifest(raw: unknown): TaskManifest {
  const p: string[] = [];
  const m = (raw ?? {}) as Record<string, unknown>;
  const obj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!obj(raw)) p.push('not a JSON object');
  if (m.format !== TASK_MODEL_FORMAT) p.push(`format must be '${TASK_MODEL_FORMAT}'`);
  if (m.version !== TASK_MODEL_VERSION) p.push(`version ${String(m.version)} is not supported (this build reads ${TASK_MODEL_VERSION})`);
  if (typeof m.name !== 'string' || m.name === '') p.push('name must be a string');
  if (m.task !== 'segment' && m.task !== 'restore') p.push(`task must be 'segment' or 'restore'`);
  const bb = (m.backbone ?? {}) as Record<string, unknown>;
  if (typeof bb.arch !== 'string' || !obj(bb.config)) p.push('backbone must be {arch, config}');
  const hd = (m.head ?? {}) as Record<string, unknown>;
  if (typeof hd.kind !== 'string' || !obj(hd.config)) p.push('head must be {kind, config}');
  const inp = (m.input ?? {}) as Record<string, unknown>;
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (!posInt(inp.channels) || !Number.isInteger(inp.context) || (inp.context as number) < 0 || !posInt(inp.multipleOf) || !obj(inp.normalization) || typeof inp.canonical !== 'boolean') {
    p.push('input must be {channels > 0, context ≥ 0, multipleOf > 0, normalization, canonical}');
  }
  if (inp.spacing !== undefined && !(Array.isArray(inp.spacing) && inp.spacing.length === 2 && inp.spacing.every((v) => typeof v === 'number' && v > 0))) p.push('input.spacing must be [x, y] in mm');
  if (!Array.isArray(m.classes) || !m.classes.every((c) => typeof c === 'string')) p.push('classes must be a string array');
  if (m.task === 'segment' && Array.isArray(m.classes) && m.classes.length < 2) p.push('a segmentation model needs at least 2 classes (background first)');
  const w = (m.weights ?? {}) as Record<string, unknown>;
  if (typeof w.file !== 'string' || /[\\/]/.test(w.file) || w.file.startsWith('.')) p.push('weights.file must be a plain file name');
  if (typeof w.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(w.sha256)) p.push('weights.sha256 must be 64 hex digits');
  if (m.card !== undefined && !obj(m.card)) p.push('card must be an object');
  const known = new Set(['format', 'version', 'name', 'task', 'description', 'backbone', 'head', 'input', 'classes', 'postprocess', 'weights', 'card']);
  if (m.postprocess !== undefined && !obj(m.postprocess)) p.push('postprocess must be an object');
  for (const k of Object.keys(m)) if (!known.has(k)) p.push(`unknown key '${k}'`);
  if (p.length) throw new GatedError('unsupported_format', `model.json is not a valid gatedvision task model: ${p.join('; ')}`);
  return m as unknown as TaskManifest;
}

// --- internal ---

function completeSpec(spec: TaskSpec): TaskSpec {
  getVariant(spec.backbone.arch);
  const { context, channels } = spec.input;
  if (spec.task === 'segment' && spec.classes.length < 2) throw new GatedError('config', 'a segmentation model needs at least 2 classes (background first)');
  if (channels % (2 * context + 1) !== 0) throw new GatedError('config', `input.channels ${channels} is not a multiple of the ${2 * context + 1} slices of a context of ${context}`);
  return {
    ...spec,
    backbone: { arch: spec.backbone.arch, config: resolveConfig(spec.backbone.arch, { ...spec.backbone.config, inChans: channels }) },
    head: { kind: spec.head.kind, config: resolveHeadConfig(spec.head.kind, spec.head.config) },
  };
}

function outChannels(m: TaskSpec): number {
  if (m.task === 'segment') return m.classes.length;
  return m.input.channels / (2 * m.input.context + 1);
}

class Assembled implements TaskModel {
  readonly backbone: Backbone;
  readonly #head: Head | null;
  readonly #headStore: ParamStore;

  constructor(
    readonly manifest: TaskManifest,
    readonly sha256: string,
    seed: number,
  ) {
    this.backbone = createFromConfig(familyOf(manifest.backbone.arch), manifest.backbone.config);
    this.#headStore = new ParamStore(true, seed + 7919);
    try {
      if (manifest.head.kind === NATIVE_HEAD) this.#head = null;
      else {
        const spec = getHead(manifest.head.kind);
        this.#head = spec.build({ ...spec.defaults, ...manifest.head.config }, { featureInfo: this.backbone.featureInfo, inChannels: manifest.input.channels, outChannels: outChannels(manifest), store: this.#headStore.scope('head') });
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  predict(x: tf.Tensor4D): tf.Tensor4D {
    if (x.shape[3] !== this.manifest.input.channels) throw new GatedError('shape', `model '${this.manifest.name}' takes ${this.manifest.input.channels} channels, got ${x.shape[3]}`);
    // inference on WebGPU replays the recorded forward of each batch shape (kernels/webgpu_replay.ts)
    if (inTraining()) return this.#forward(x);
    return this.replays.run(x, (t) => this.#forward(t as tf.Tensor4D), this.backbone.forwardKey?.() ?? '') as tf.Tensor4D;
  }

  /** Recorded forwards by input shape (WebGPU inference only). */
  readonly replays = new ReplayCache(2);

  #forward(x: tf.Tensor4D): tf.Tensor4D {
    if (!this.#head) return this.backbone.forward(x) as tf.Tensor4D;
    const feats = this.backbone.forwardFeatures(x);
    try {
      return this.#head.forward(feats, x);
    } finally {
      tf.dispose(feats);
    }
  }

  /** Trainable variables that the output depends on (a classifier the head does not use is left out). */
  variables(): tf.Variable[] {
    const unused = this.#head ? [...this.backbone.params.specs.keys()].filter((n) => n.startsWith('classifier.')) : [];
    const skip = new Set(unused.map((n) => this.backbone.params.variable(n)));
    return [...this.backbone.params.variables().filter((v) => !skip.has(v)), ...this.#headStore.variables()];
  }

  async exportWeights(): Promise<StateDict> {
    const out: StateDict = new Map();
    for (const [n, t] of await this.backbone.params.export()) out.set(`backbone.${n}`, t);
    for (const [n, t] of await this.#headStore.export()) out.set(n, t);
    return out;
  }

  loadWeights(w: StateDict, opts: { allowMissing?: boolean } = {}): string[] {
    const bb: StateDict = new Map();
    const hd: StateDict = new Map();
    for (const [n, t] of w) {
      if (n.startsWith('backbone.')) bb.set(n.slice('backbone.'.length), t);
      else if (n.startsWith('head.')) hd.set(n, t);
      else throw new GatedError('config', `weight '${n}' belongs to neither the backbone nor the head`);
    }
    const missing = this.backbone.params.load(bb, opts).map((n) => `backbone.${n}`);
    return [...missing, ...this.#headStore.load(hd, opts)];
  }

  dispose(): void {
    this.replays.dispose();
    this.backbone.dispose();
    this.#headStore.dispose();
  }
}
