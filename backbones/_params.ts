/**
 * Parameter store for backbones: every weight is declared once by name, shape and initializer. A store
 * built with `materialize: false` only records shapes (parameter counts of full-size variants without
 * allocating them); a materialized store holds one trainable tf.Variable per name. Names are ours; each
 * family's checkpoint converter maps official names onto them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { disposeReleasing } from '../kernels/_webgpu_internal.ts';
import { numel, type StateDict } from './weights/tensors.ts';

export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'const'; value: number }
  | { kind: 'normal'; std: number } // truncated at 2 std, as timm's trunc_normal_
  | { kind: 'uniform'; bound: number };

export const zeros: Init = { kind: 'zeros' };
export const ones: Init = { kind: 'ones' };
export const normal = (std: number): Init => ({ kind: 'normal', std });
export const uniform = (bound: number): Init => ({ kind: 'uniform', bound });
/** PyTorch's default conv/linear init (kaiming-uniform a=√5), bound 1/√fanIn. */
export const fanInUniform = (fanIn: number): Init => ({ kind: 'uniform', bound: 1 / Math.sqrt(fanIn) });

export class Param {
  constructor(
    readonly name: string,
    readonly shape: readonly number[],
    readonly store: ParamStore,
  ) {}
  /** The variable; only on a materialized store. */
  get v(): tf.Variable {
    return this.store.variable(this.name);
  }
}

export class ParamStore {
  readonly specs = new Map<string, { shape: number[]; init: Init; buffer: boolean }>();
  readonly #vars = new Map<string, tf.Variable>();
  /** Parameters moved to host memory by `offload`: their values, and the data id the variable had then. */
  readonly #host = new Map<string, { data: Float32Array; trainable: boolean; varName: string; sourceId: object }>();
  #seed: number;

  constructor(
    readonly materialize: boolean,
    seed = 0,
  ) {
    this.#seed = seed;
  }

  add(name: string, shape: readonly number[], init: Init): Param {
    return this.#declare(name, shape, init, false);
  }

  /** A non-trainable state tensor (BatchNorm running statistics): saved and loaded, not counted, not trained. */
  addBuffer(name: string, shape: readonly number[], init: Init): Param {
    return this.#declare(name, shape, init, true);
  }

  #declare(name: string, shape: readonly number[], init: Init, buffer: boolean): Param {
    if (this.specs.has(name)) throw new GatedError('internal', `parameter '${name}' is declared twice`);
    this.specs.set(name, { shape: [...shape], init, buffer });
    if (this.materialize) {
      const value = initTensor(shape, init, this.#seed++);
      this.#vars.set(name, tf.variable(value, !buffer, `${name}#${nextUid++}`));
      value.dispose(); // the variable holds its own reference to the data
    }
    return new Param(name, shape, this);
  }

  /** A scoped view that prefixes names: `store.scope('blocks.0').add('norm.weight', ...)`; `sep` joins levels. */
  scope(prefix: string, sep = '.'): ScopedStore {
    return new ScopedStore(this, prefix, sep);
  }

  variable(name: string): tf.Variable {
    if (this.#host.has(name)) this.#restore(name);
    const v = this.#vars.get(name);
    if (!v) {
      if (!this.materialize) throw new GatedError('internal', `parameter '${name}' was declared for counting only; build the model with weights to run it`);
      throw new GatedError('internal', `unknown parameter '${name}'`);
    }
    return v;
  }

  count(): number {
    let n = 0;
    for (const s of this.specs.values()) if (!s.buffer) n += numel(s.shape);
    return n;
  }

  /** Trainable variables (buffers excluded); offloaded ones come back to the device first. */
  variables(): tf.Variable[] {
    for (const name of [...this.#host.keys()]) this.#restore(name);
    return [...this.#vars.entries()].filter(([n]) => !this.specs.get(n)!.buffer).map(([, v]) => v);
  }

  /** Assigns weights by our names, each with its exact shape; every parameter must be present unless `allowMissing`
   *  (a model grown from a smaller one), and never a weight the model has no place for. Returns the names the
   *  weights did not hold (kept as initialised). */
  load(weights: StateDict, { strict = true, allowMissing = false }: { strict?: boolean; allowMissing?: boolean } = {}): string[] {
    const missing = [...this.specs.keys()].filter((k) => !weights.has(k));
    const unexpected = [...weights.keys()].filter((k) => !this.specs.has(k));
    if (strict && ((missing.length && !allowMissing) || unexpected.length)) {
      throw new GatedError('config', `weights do not fit the model: ${missing.length} missing (${missing.slice(0, 5).join(', ')}), ${unexpected.length} unexpected (${unexpected.slice(0, 5).join(', ')})`, {
        details: { missing: missing.slice(0, 50), unexpected: unexpected.slice(0, 50) },
      });
    }
    for (const [name, spec] of this.specs) {
      const w = weights.get(name);
      if (!w) continue;
      if (w.shape.length !== spec.shape.length || w.shape.some((d, i) => d !== spec.shape[i])) {
        throw new GatedError('shape', `weight '${name}' has shape [${w.shape}], the model expects [${spec.shape}]`);
      }
      this.variable(name).assign(tf.tensor(w.data, spec.shape, 'float32'));
    }
    return missing;
  }

  /** Current values by our names (for saving). */
  async export(): Promise<StateDict> {
    const out: StateDict = new Map();
    for (const [name, v] of this.#vars) out.set(name, { shape: [...v.shape], data: (await v.data()) as Float32Array });
    for (const [name, h] of this.#host) out.set(name, { shape: [...this.specs.get(name)!.shape], data: h.data.slice() });
    return out;
  }

  /**
   * Moves parameters to host memory: their device copies are freed and their values kept here. A model that has
   * built everything it runs on from them (ViG's packed projections) then holds one copy of each weight on the
   * device instead of two. Any later use (`variable`, `Param.v`, `variables()`, `load`) brings a parameter back,
   * with the same values and name, as a new tf.Variable, so only offload a model no optimizer holds variables of.
   */
  async offload(names: readonly string[]): Promise<void> {
    const gone: tf.Variable[] = [];
    for (const name of names) {
      const v = this.#vars.get(name);
      if (!v) continue; // already offloaded (or unknown: variable() would say so when asked)
      const data = (await v.data()) as Float32Array;
      this.#host.set(name, { data, trainable: v.trainable, varName: v.name, sourceId: v.dataId });
      this.#vars.delete(name);
      gone.push(v);
    }
    disposeReleasing(gone); // their buffers back to the device, not to a pool that would keep them for their sizes
  }

  /** Whether `name` is offloaded to host memory (see `offload`). */
  isOffloaded(name: string): boolean {
    return this.#host.has(name);
  }

  /**
   * The data id of `name`'s current value without bringing an offloaded parameter back (for caches built from
   * parameters: an offloaded one keeps the id it had when offloaded, as its value cannot have changed since).
   */
  sourceId(name: string): object {
    return this.#host.get(name)?.sourceId ?? this.variable(name).dataId;
  }

  dispose(): void {
    for (const v of this.#vars.values()) v.dispose();
    this.#vars.clear();
    this.#host.clear();
  }

  #restore(name: string): void {
    const h = this.#host.get(name)!;
    const value = tf.tensor(h.data, this.specs.get(name)!.shape, 'float32');
    this.#vars.set(name, tf.variable(value, h.trainable, h.varName));
    value.dispose();
    this.#host.delete(name);
  }
}

export class ScopedStore {
  constructor(
    readonly root: ParamStore,
    readonly prefix: string,
    readonly sep = '.',
  ) {}
  add(name: string, shape: readonly number[], init: Init): Param {
    return this.root.add(`${this.prefix}${this.sep}${name}`, shape, init);
  }
  addBuffer(name: string, shape: readonly number[], init: Init): Param {
    return this.root.addBuffer(`${this.prefix}${this.sep}${name}`, shape, init);
  }
  scope(prefix: string): ScopedStore {
    return new ScopedStore(this.root, `${this.prefix}${this.sep}${prefix}`, this.sep);
  }
}

export type Store = ParamStore | ScopedStore;

// --- internal ---

/** tfjs variable names are global to the engine; ours are unique per store, so add a counter. */
let nextUid = 0;

function initTensor(shape: readonly number[], init: Init, seed: number): tf.Tensor {
  const s = [...shape];
  switch (init.kind) {
    case 'zeros':
      return tf.zeros(s);
    case 'ones':
      return tf.ones(s);
    case 'const':
      return tf.fill(s, init.value);
    case 'normal':
      return tf.truncatedNormal(s, 0, init.std, 'float32', seed + 1);
    case 'uniform':
      return tf.randomUniform(s, -init.bound, init.bound, 'float32', seed + 1);
  }
}
