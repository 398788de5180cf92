/**
 * Model inference over the axial slices of a normalised canonical volume. Whole slices go through the
 * network when they fit under `maxSide` (linear backbones take 1024² untiled), larger ones by Gaussian-blended
 * sliding windows; class probabilities exist for one batch of slices at a time and are argmaxed at once into
 * a uint8/uint16 label map — there is never a float map of the whole volume.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { argmaxInto, slidingWindowSlice } from './sliding_window.ts';
import { resize } from '../heads/fpn.ts';
import { backgroundLevel, resampledSize, writeSliceStack, type SliceGeometry } from './slices.ts';
import { StageClock } from './segment_timings.ts';
import type { Normalizer } from './preprocess.ts';
import { isSliceSource, sourceOf, type SliceSource } from './slice_source.ts';
import type { TaskModel } from './task_model.ts';

export interface InferOptions {
  /** Average with the left-right mirrored prediction. */
  tta?: boolean;
  /** Slices per model call. */
  batch?: number;
  /** Slices larger than this (after padding) are tiled. */
  maxSide?: number;
  overlap?: number;
  onProgress?: (done: number, total: number) => void;
  /** Milliseconds per sub-stage are added here (`segment.infer.*`). */
  timings?: Record<string, number>;
  /** Pack labels on the device before they come back (default: on WebGPU, where the read-back is the cost). */
  packLabels?: boolean;
  /**
   * The labels may be written over `data` itself, from its start, as slices that no later group reads are done
   * with (the data is destroyed; the labels are then a view of its buffer). Saves a label volume beside the
   * input; taken only where it is safe (whole slices, every slice, a type at least as wide as the labels').
   */
  reuseData?: boolean;
}

/** One group of slices on its way through the device. */
interface InFlight {
  group: number[];
  tensors: tf.Tensor[];
  read: Promise<tf.TypedArray[]>;
}

/** How a volume goes through the model: its slices' size on the model grid, padded, and slices per call. */
interface Plan {
  C: number;
  K: number;
  nx: number;
  ny: number;
  nz: number;
  ox: number;
  oy: number;
  Hp: number;
  Wp: number;
  /** Whole slices fit under maxSide (otherwise each slice is tiled). */
  whole: boolean;
  batch: number;
}

function planFor(model: TaskModel, shape: readonly number[], spacing: readonly number[], opts: InferOptions): Plan {
  const { channels, context, multipleOf: m } = model.manifest.input;
  const C = 2 * context + 1;
  if (channels !== C) throw new GatedError('config', `model '${model.manifest.name}' takes ${channels} channels per slice stack; only scalar volumes are supported`);
  const [nx = 1, ny = 1, nz = 1] = shape;
  const [ox, oy] = resampledSize(nx, ny, spacing, model.manifest.input.spacing);
  const up = (n: number) => Math.max(m, Math.ceil(n / m) * m);
  const [Hp, Wp] = [up(oy), up(ox)];
  const maxSide = opts.maxSide ?? 1024;
  // CPU backends keep activations in host memory, and wasm's heap keeps its high-water mark for the whole run:
  // 64k pixels per call (one slice of 224², the brain model's grid for a 512² slice at 0.4 mm) holds it to
  // ~60 MiB where 256k took ~330 MiB, at the same speed there. On a GPU they live in device memory and the cost
  // is per call, so calls are made large.
  const pixels = tf.getBackend() === 'webgpu' || tf.getBackend() === 'tensorflow' ? 4096 * 1024 : 64 * 1024;
  const batch = Math.max(1, opts.batch ?? Math.max(1, Math.floor(pixels / (Hp * Wp))));
  return { C, K: model.manifest.classes.length, nx, ny, nz, ox, oy, Hp, Wp, whole: Hp <= maxSide && Wp <= maxSide, batch };
}

/**
 * The device work of one group of n slices: stored slices `v` [z, ny, nx] → normalised → 2.5D stacks picked by
 * `ix` → model grid → probabilities → native grid → labels (int32 [n, ny, nx]) and a count of NaNs. Tensors
 * are made in the caller's tidy.
 */
function groupGraph(model: TaskModel, p: Plan, v: tf.Tensor3D, ix: tf.Tensor1D, n: number, norm: Normalizer | undefined, fill: number, tta: boolean, clock: StageClock, pack: boolean): [tf.Tensor, tf.Tensor] {
  // three scopes, so that the native-resolution input maps are gone before the model runs and its activations
  // before the output maps are made (a CPU backend's heap keeps its high-water mark for the whole run)
  const grid = tf.tidy(() => {
    const x = tf.transpose(tf.reshape(tf.gather(norm ? normalizeTensor(v, norm) : v, ix), [n, p.C, p.ny, p.nx]), [0, 2, 3, 1]) as tf.Tensor4D;
    return tf.pad(resize(x, p.oy, p.ox), [[0, 0], [0, p.Hp - p.oy], [0, p.Wp - p.ox], [0, 0]], fill) as tf.Tensor4D;
  });
  clock.lap('segment.infer.input');
  const q = probabilities(model, grid, tta);
  grid.dispose();
  clock.lap('segment.infer.model');
  if (q.shape[3] !== p.K) throw new GatedError('internal', `model '${model.manifest.name}' gave ${q.shape[3]} channels for ${p.K} classes`);
  const res = tf.tidy(() => {
    const out = resize(tf.slice(q, [0, 0, 0, 0], [n, p.oy, p.ox, p.K]) as tf.Tensor4D, p.ny, p.nx);
    const lab = tf.argMax(out, -1);
    return [pack ? packLabels(lab, p.K) : lab, tf.sum(tf.cast(tf.isNaN(out), 'float32'))] as [tf.Tensor, tf.Tensor];
  });
  q.dispose();
  return res;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** For each byte of bits, its 8 one-bit labels as two little-endian words of four bytes. */
const BYTE_TO_LABELS = Uint32Array.from({ length: 512 }, (_, i) => {
  const byte = i >> 1;
  let v = 0;
  for (let k = 0; k < 4; k++) v |= ((byte >> (k + 4 * (i & 1))) & 1) << (8 * k);
  return v >>> 0;
});

/** Bits per label and labels per packed float32 (24 bits: every partial sum of the packing is exact). */
function packing(K: number): { bits: number; per: number } {
  const bits = Math.max(1, Math.ceil(Math.log2(K)));
  return { bits, per: Math.floor(24 / bits) };
}

/**
 * Labels (int32, any shape) → float32 words of `per` labels of `bits` bits each, the first label in the low
 * bits: Σ label_j · 2^(bits·j). Every term and partial sum is an integer below 2^24, so the float sum is
 * exact in any order, and a 512×512×83 group of two-class labels comes back as 3.6 MB instead of 87 MB.
 */
function packLabels(lab: tf.Tensor, K: number): tf.Tensor1D {
  const { bits, per } = packing(K);
  const n = lab.size;
  const words = Math.ceil(n / per);
  const flat = tf.pad(tf.reshape(tf.cast(lab, 'float32'), [n]), [[0, words * per - n]]);
  const weights = tf.tensor1d(Float32Array.from({ length: per }, (_, j) => 2 ** (bits * j)));
  return tf.sum(tf.mul(tf.reshape(flat, [words, per]), weights), 1) as tf.Tensor1D;
}

/** The inverse of packLabels: n labels from the packed words into out[0 .. n). */
function unpackLabels(words: ArrayLike<number>, K: number, n: number, out: Uint8Array | Uint16Array): void {
  const { bits, per } = packing(K);
  const mask = (1 << bits) - 1;
  let o = 0;
  let w = 0;
  if (bits === 1 && out instanceof Uint8Array && out.byteOffset % 4 === 0 && LITTLE_ENDIAN) {
    // two classes: each byte of a word is 8 labels, written as two 32-bit stores from a table
    const out32 = new Uint32Array(out.buffer, out.byteOffset, Math.floor(n / 24) * 6);
    for (let q = 0; w < out32.length / 6; w++) {
      const u = words[w]! | 0;
      for (let b = 0; b < 24; b += 8, q += 2) {
        const t = ((u >>> b) & 255) * 2;
        out32[q] = BYTE_TO_LABELS[t]!;
        out32[q + 1] = BYTE_TO_LABELS[t + 1]!;
      }
    }
    o = w * 24;
  }
  for (; w < words.length && o < n; w++) {
    let u = words[w]! | 0;
    for (let j = 0; j < per && o < n; j++, u >>>= bits) out[o++] = u & mask;
  }
}

/**
 * On WebGPU, compiles every shader that whole-slice inference of a volume of this shape will use, without
 * running anything: the pipelines are created asynchronously (in parallel, off the JavaScript thread) while the
 * caller goes on with the CPU work that precedes inference (reorientation, statistics). `normLike` needs only
 * the structure of the final normaliser (which clips apply), not its values. Settles when every pipeline is
 * ready; elsewhere, at once. Inference is correct without it (tfjs compiles on first use), only later.
 * GATEDVISION_COMPILE_AHEAD=0 turns it off (to time both ways).
 */
export function compileAhead(model: TaskModel, shape: readonly number[], spacing: readonly number[], normLike: Normalizer | undefined, opts: InferOptions = {}): Promise<void> {
  if (!compilesAhead()) return Promise.resolve();
  const backend = tf.backend() as unknown as { checkCompileCompletionAsync?: () => Promise<void> };
  if (typeof backend.checkCompileCompletionAsync !== 'function') return Promise.resolve();
  const p = planFor(model, shape, spacing, opts);
  if (!p.whole) return Promise.resolve();
  // the same plan asked for again (from the file's header before decoding, then from the decoded volume) is
  // compiled once
  const key = JSON.stringify([p, opts.tta ?? false, opts.packLabels ?? true, normLike ? [normLike.slope === 1 && normLike.inter === 0, Number.isFinite(normLike.lo), Number.isFinite(normLike.hi), normLike.keepZero] : null]);
  const last = compiled.get(model);
  if (last?.key === key) return last.done;
  const { context } = model.manifest.input;
  // a full group and the last, shorter one: some programs choose their variant by size
  const sizes = [...new Set([Math.min(p.batch, p.nz), p.nz % p.batch].filter((n) => n > 0))];
  const idle = new StageClock();
  tf.env().set('WEBGPU_ENGINE_COMPILE_ONLY', true);
  try {
    for (const n of sizes) {
      tf.tidy(() => {
        const depth = Math.min(p.nz, n + 2 * context);
        const ix = tf.tensor1d(Int32Array.from({ length: n * p.C }, (_, i) => Math.min(depth - 1, Math.floor(i / p.C) + (i % p.C))), 'int32');
        groupGraph(model, p, tf.zeros([depth, p.ny, p.nx]) as tf.Tensor3D, ix, n, normLike, 0, opts.tta ?? false, idle, opts.packLabels ?? true);
      });
    }
  } finally {
    tf.env().set('WEBGPU_ENGINE_COMPILE_ONLY', false);
  }
  const done = backend.checkCompileCompletionAsync!();
  compiled.set(model, { key, done });
  return done;
}

const compiled = new WeakMap<TaskModel, { key: string; done: Promise<void> }>();

/** Whether compileAhead does anything here (so that a caller can skip gathering what it needs). */
export function compilesAhead(): boolean {
  return tf.getBackend() === 'webgpu' && process.env.GATEDVISION_COMPILE_AHEAD !== '0';
}

/**
 * Labels [nx·ny·nz] for the slices `zs` (all when omitted); the others stay 0. `spacing` is the volume's
 * voxel size: when the model declares an in-plane spacing, each slice is resampled to it on the device and
 * the class probabilities are resampled back before the argmax (nnU-Net's target-spacing practice). With a
 * normaliser, `data` holds stored values that are normalised slice by slice. `data` is the volume in memory or a
 * source its slices are read from as each group needs them (a file: the volume is then never held whole).
 */
export async function predictLabels(model: TaskModel, data: ArrayLike<number> | SliceSource, shape: readonly number[], spacing: readonly number[], opts: InferOptions = {}, zs?: number[], norm?: Normalizer): Promise<Uint8Array | Uint16Array> {
  const plan = planFor(model, shape, spacing, opts);
  const { C, K, nx, ny, nz, ox, oy, Hp, Wp } = plan;
  const { context } = model.manifest.input;
  const native: SliceGeometry = { nx, ny, nz, H: ny, W: nx };
  const slices = zs ?? Array.from({ length: nz }, (_, z) => z);
  const clock = new StageClock(opts.timings);
  const source = sourceOf(data, shape);
  const fill = backgroundLevel(source, norm);
  clock.lap('segment.background');
  const plane = nx * ny;
  const labels = (opts.reuseData && plan.whole && !zs && !isSliceSource(data) ? labelsOver(data, plane * nz, K, plan.batch, context) : undefined) ?? (K <= 256 ? new Uint8Array(plane * nz) : new Uint16Array(plane * nz));
  const probs = (x: tf.Tensor4D) => probabilities(model, x, opts.tta ?? false);
  const toModelGrid = (x: tf.Tensor4D) => tf.pad(resize(x, oy, ox), [[0, 0], [0, Hp - oy], [0, Wp - ox], [0, 0]], fill) as tf.Tensor4D;
  const toNative = (p: tf.Tensor4D) => resize(tf.slice(p, [0, 0, 0, 0], [p.shape[0], oy, ox, K]) as tf.Tensor4D, ny, nx);
  const store = async (p: tf.Tensor4D, group: number[]) => {
    if (p.shape[3] !== K) throw new GatedError('internal', `model '${model.manifest.name}' gave ${p.shape[3]} channels for ${K} classes`);
    const v = (await p.data()) as Float32Array;
    checkFinite(v, model.manifest.name);
    group.forEach((z, i) => argmaxInto(v.subarray(i * plane * K, (i + 1) * plane * K), K, labels, z * plane));
  };
  if (plan.whole && slices.length > 0) {
    const batch = plan.batch;
    const pack = opts.packLabels ?? tf.getBackend() === 'webgpu';
    const groups: number[][] = [];
    for (let b = 0; b < slices.length; b += batch) groups.push(slices.slice(b, b + batch));
    // one host array for every group's stored slices: each group's tensor is made, used and disposed within its
    // dispatch, and no output shares its memory, so the next group may overwrite it
    const span = Math.min(nz, batch + 2 * context);
    const scratch = span * plane <= UPLOAD_CHUNK_VALUES ? new Float32Array(span * plane) : undefined;
    // the stored slices a group needs go up once; normalising, stacking neighbours and the argmax run on the
    // device, and only labels come back
    const dispatch = (group: number[]): InFlight => {
      const z0 = Math.max(0, Math.min(...group) - context);
      const z1 = Math.min(nz - 1, Math.max(...group) + context);
      const idx = Int32Array.from(group.flatMap((z) => Array.from({ length: C }, (_, c) => Math.min(nz - 1, Math.max(0, z + c - context)) - z0)));
      const v = uploadSlices(source, z0, z1 + 1, plane, ny, nx, UPLOAD_CHUNK_VALUES, scratch);
      const ix = tf.tensor1d(idx, 'int32');
      clock.lap('segment.infer.upload');
      try {
        const [lab, nan] = tf.tidy(() => groupGraph(model, plan, v, ix, group.length, norm, fill, opts.tta ?? false, clock, pack));
        clock.lap('segment.infer.output');
        // asking for the data now queues the copy behind this group's work, before the next group's
        return { group, tensors: [lab, nan], read: Promise.all([lab.data(), nan.data()]) };
      } finally {
        tf.dispose([v, ix]);
      }
    };
    const collect = async (f: InFlight) => {
      try {
        const [l, bad] = (await f.read) as [tf.TypedArray, tf.TypedArray];
        clock.lap('segment.infer.wait');
        if (bad[0]! > 0) throw new GatedError('kernel', `model '${model.manifest.name}' produced non-finite outputs on this device`);
        let src: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> } = l;
        if (pack) {
          const n = f.group.length * plane;
          const contiguous = f.group.every((z, i) => z === f.group[0]! + i);
          // consecutive slices unpack straight into the volume; others through a scratch copy
          const into = contiguous ? labels.subarray(f.group[0]! * plane, f.group[0]! * plane + n) : labels instanceof Uint8Array ? new Uint8Array(n) : new Uint16Array(n);
          unpackLabels(l, K, n, into);
          src = into;
          if (contiguous) {
            clock.lap('segment.infer.place');
            return;
          }
        }
        f.group.forEach((z, i) => labels.set(src.subarray(i * plane, (i + 1) * plane) as ArrayLike<number>, z * plane));
        clock.lap('segment.infer.place');
      } finally {
        tf.dispose(f.tensors);
      }
    };
    const t0 = performance.now();
    let current: InFlight | undefined;
    try {
      current = dispatch(groups[0]!);
      for (let g = 0; g < groups.length; g++) {
        // the next group is queued before this one is awaited, so the host's work overlaps the device's
        const next = g + 1 < groups.length ? dispatch(groups[g + 1]!) : undefined;
        const done = current!;
        current = next;
        await collect(done);
        if (g === 0) clock.add('segment.infer.firstBatch', performance.now() - t0);
        opts.onProgress?.(Math.min((g + 1) * batch, slices.length), slices.length);
        clock.reset();
      }
    } catch (e) {
      // a failed group must not leave the next one's tensors or read-back behind
      if (current) {
        await current.read.catch(() => undefined);
        tf.dispose(current.tensors);
      }
      throw e;
    }
  } else if (!plan.whole) {
    const m = model.manifest.input.multipleOf;
    const roi = Math.max(m, Math.floor((opts.maxSide ?? 1024) / m) * m);
    const stack = new Float32Array(plane * C);
    for (let i = 0; i < slices.length; i++) {
      const z = slices[i]!;
      writeSliceStack(source, native, z, context, fill, stack, 0, norm);
      const grid = tf.tidy(() => toModelGrid(tf.tensor4d(stack, [1, ny, nx, C])));
      const gridData = (await grid.data()) as Float32Array;
      grid.dispose();
      const { logits } = await slidingWindowSlice(gridData, Hp, Wp, C, probs, { roi: [roi, roi], overlap: opts.overlap ?? 0.25, ...(opts.batch ? { batch: opts.batch } : {}) });
      const out = tf.tidy(() => toNative(tf.tensor4d(logits, [1, Hp, Wp, K])));
      try {
        await store(out, [z]);
      } finally {
        out.dispose();
      }
      opts.onProgress?.(i + 1, slices.length);
    }
  }
  return labels;
}

/**
 * A label array over the front of `data`'s own buffer, or undefined where that could overwrite values still to
 * be read. Group g's labels (slices [s_g, s_g+1)) are stored after group g+1 has gone to the device (and been
 * copied there) and before group g+2 is read from slice s_g+2 - context on; their bytes end at s_g+1 · plane ·
 * (label bytes), which is no further than that slice's first stored value when the labels are no wider than the
 * stored type and a group holds at least `context` slices.
 */
function labelsOver(data: ArrayLike<number>, n: number, K: number, batch: number, context: number): Uint8Array | Uint16Array | undefined {
  if (!ArrayBuffer.isView(data) || data instanceof DataView || batch < context) return undefined;
  const view = data as unknown as { BYTES_PER_ELEMENT: number; buffer: ArrayBufferLike; byteOffset: number; length: number };
  const bytes = K <= 256 ? 1 : 2;
  // shared memory (a series decoded on several threads) may still be seen by another thread: left alone
  if (view.length < n || view.BYTES_PER_ELEMENT < bytes || view.byteOffset % bytes !== 0 || !(view.buffer instanceof ArrayBuffer)) return undefined;
  return bytes === 1 ? new Uint8Array(view.buffer, view.byteOffset, n) : new Uint16Array(view.buffer, view.byteOffset, n);
}

/** Softmax probabilities [B, H, W, K], averaged with the mirrored pass when asked. */
export function probabilities(model: TaskModel, x: tf.Tensor4D, tta: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const p = tf.softmax(model.predict(x)) as tf.Tensor4D;
    if (!tta) return p;
    const q = tf.reverse(tf.softmax(model.predict(tf.reverse(x, 2) as tf.Tensor4D)), 2);
    return tf.mul(tf.add(p, q), 0.5) as tf.Tensor4D;
  });
}

/**
 * Host memory per upload: a group of slices goes up as float32 pieces of at most this many values, joined on
 * the device. A whole group at once (85 slices of 512² on a GPU) cost an 85 MiB float32 copy plus the host memory
 * Dawn maps to upload it, twice when the next group is dispatched before the last is collected.
 */
export const UPLOAD_CHUNK_VALUES = 1 << 22;

/**
 * Stored slices [z0, z1) as one float32 tensor [z1 - z0, ny, nx], built on the device from bounded pieces. On
 * WebGPU each piece is sent at once (tfjs then drops its host values), so one scratch array serves them all. A
 * source is read a piece at a time, so no more than a piece of its stored values is on the host either.
 */
export function uploadSlices(data: ArrayLike<number> | SliceSource, z0: number, z1: number, plane: number, ny: number, nx: number, chunkValues = UPLOAD_CHUNK_VALUES, into?: Float32Array): tf.Tensor3D {
  const source = sourceOf(data, [nx, ny, isSliceSource(data) ? data.shape[2] : Math.floor(data.length / plane)]);
  const per = Math.max(1, Math.floor(chunkValues / plane));
  if (z1 - z0 <= per) {
    // `into`: the caller's array, which the tensor may hold (cpu) until the caller disposes it
    const values = into && into.length >= (z1 - z0) * plane ? float32Into(source.read(z0, z1), into) : new Float32Array(source.read(z0, z1));
    return tf.tensor3d(values, [z1 - z0, ny, nx]);
  }
  const gpu = tf.backend() as unknown as { uploadToGPU?: (dataId: object) => void };
  const send = tf.getBackend() === 'webgpu' && typeof gpu.uploadToGPU === 'function' ? gpu.uploadToGPU.bind(gpu) : undefined;
  const scratch = send ? new Float32Array(per * plane) : undefined;
  const pieces: tf.Tensor3D[] = [];
  try {
    for (let z = z0; z < z1; z += per) {
      const e = Math.min(z1, z + per);
      const values = scratch ? float32Into(source.read(z, e), scratch) : new Float32Array(source.read(z, e));
      const piece = tf.tensor3d(values, [e - z, ny, nx]);
      pieces.push(piece);
      send?.(piece.dataId);
    }
    return tf.concat3d(pieces, 0);
  } finally {
    tf.dispose(pieces);
  }
}

/** Stored values converted into the front of `out` (a view of that part). */
function float32Into(values: ArrayLike<number>, out: Float32Array): Float32Array {
  const view = out.subarray(0, values.length);
  view.set(values);
  return view;
}

/** The Normalizer as tensor ops (same arithmetic as preprocess.normalized). */
function normalizeTensor(v: tf.Tensor, n: Normalizer): tf.Tensor {
  const real = n.slope === 1 && n.inter === 0 ? v : tf.add(tf.mul(v, n.slope), n.inter);
  const clipped = Number.isFinite(n.lo) || Number.isFinite(n.hi) ? tf.clipByValue(real, Number.isFinite(n.lo) ? n.lo : -3.4e38, Number.isFinite(n.hi) ? n.hi : 3.4e38) : real;
  const out = tf.add(tf.mul(clipped, n.scale), n.offset);
  return n.keepZero ? tf.where(tf.equal(real, 0), tf.zerosLike(out), out) : out;
}

// A model that returns NaN must fail loudly, not write an empty mask that looks like a result.
function checkFinite(p: Float32Array, name: string): void {
  for (let i = 0; i < p.length; i += 97) if (!Number.isFinite(p[i]!)) throw new GatedError('kernel', `model '${name}' produced non-finite outputs on this device`);
}
