/**
 * A stack plan + the decoded objects → one Volume. Each object is decoded once and its frames go
 * straight into their slots of the output buffer (DICOM row-major frames become x = column, y = row,
 * z = slice; colour samples become the planar 4th axis). The output size is checked against the limits
 * before anything is allocated. A uniform modality LUT is kept exact: applied only when that is lossless
 * in a signed integer type, carried in meta.rescale otherwise.
 */
import { setImmediate as eventLoopTurn } from 'node:timers/promises';
import { GatedError, toGatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import { axisCodes } from '../geometry.ts';
import { allocate, DTYPE_BYTES, viewAs, type DType, type IoWarning, type Rescale, type Volume, type VoxelArray } from '../volume.ts';
import type { DicomHeader } from './parse.ts';
import { applyBitsStored } from './pixels.ts';
import type { StackPlan } from './series.ts';
import { POOL_CODECS, POOL_MIN_FRAMES, takeDecodePool, type DecodePool } from './decode_pool.ts';
import { TRANSFER_SYNTAXES, type Codec } from './transfer_syntax.ts';
import type { SliceSink } from '../types.ts';

/** One parsed object: its header now, its stored pixel values on demand (decoding is the costly part). */
export interface ObjectSource {
  header: DicomHeader;
  /** Valid until the next pixels() call of any source of the same read (they may share one buffer). */
  pixels(): Promise<VoxelArray>;
  /**
   * Single-frame native grey objects: copies the stored bytes straight into `dst` (the frame's slot in the
   * volume) without a file buffer or a second parse; false when the object must go through pixels().
   * BitsStored is applied by the caller.
   */
  pixelsInto?(dst: Uint8Array): Promise<boolean>;
  /**
   * Encapsulated objects: the header as read now and each frame's codestream (in buffers of their own),
   * to be decoded on another thread; undefined for native pixels. Calls must not overlap each other or
   * pixels() (they may share one read buffer).
   */
  codestreams?(alloc?: (n: number) => Uint8Array): Promise<{ header: DicomHeader; codec: Codec; frames: Uint8Array[] } | undefined>;
}

export interface DecodeOutcome {
  /** Its data has length 0 when the slices went to the sink's stream alone (SliceSink.stream). */
  volume: Volume | undefined;
  /** Objects whose pixels could not be decoded; the stack must be planned again without them. */
  failed: { object: number; error: GatedError }[];
}

export async function decodePlan(plan: StackPlan, sources: readonly ObjectSource[], limits: Limits, tick: () => void = () => {}, sink?: SliceSink, opts: { stream?: boolean } = {}): Promise<DecodeOutcome> {
  const h = plan.order[0]!.header;
  const cols = h.columns;
  const rows = h.rows;
  const spp = h.samplesPerPixel;
  const n2 = rows * cols;
  const nSlices = plan.nz * plan.nt;
  const stored = storedType(h);
  const dtype: DType = plan.rescale ? stored : 'float32';
  const length = n2 * nSlices * spp;
  const bytes = length * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(bytes) || bytes > limits.maxVoxelBytes) {
    throw new GatedError('too_large', `the series would need ${bytes} bytes; the limit is ${limits.maxVoxelBytes}`, { details: { columns: cols, rows, slices: nSlices, samples: spp } });
  }
  // Slice by slice into the sink's buffers when nothing below needs the whole volume: the volume's memory
  // is then never touched, and filling fresh memory (a page fault per 4 KiB) was a third of the time of
  // loading an uncompressed series. The modality LUT's outcome must then be known from the headers alone.
  const outcome = plan.rescale ? rescaleFromHeaders(plan, dtype) : { dtype, add: 0 };
  const streamable = opts.stream !== false && spp === 1 && plan.twins.length === 0 && outcome !== undefined;
  const stream = streamable && sink?.stream && (await sink.stream.begin(n2 * DTYPE_BYTES[outcome.dtype], [cols, rows, plan.nz, plan.nt])) ? sink.stream : undefined;
  const data = allocate(dtype, stream ? 0 : length);
  // stream: stored values + the intercept, into the output type (which may be wider than the stored one)
  const add: Rescale | undefined = stream && outcome!.add !== 0 ? { slope: 1, intercept: outcome!.add } : undefined;
  const streamType = stream ? outcome!.dtype : dtype;
  /** Frame values → slice k (in the volume, or in a slot handed to the stream), reported once final. */
  const putSlice = async (src: VoxelArray, k: number, rescale: Rescale | undefined) => {
    if (!stream) {
      place(data, src, k, n2, nSlices, spp, rescale);
      if (spp === 1) sink?.placed(data, k, n2);
      return;
    }
    const slot = await stream.slot();
    place(viewAs(streamType, slot), src, 0, n2, 1, 1, rescale ?? add);
    stream.kept(slot, k);
  };
  // stream with an intercept: the file's bytes are read here first (one slice, reused)
  const scratch = add ? new Uint8Array(n2 * DTYPE_BYTES[dtype]) : undefined;
  const perObject = new Map<number, { frame: number; k: number; rescale: Rescale }[]>();
  const twinsOf = new Map<number, { frame: number; keep: number; rescale: Rescale }[]>();
  plan.order.forEach((s, k) => push(perObject, s.object, { frame: s.frame, k, rescale: s.geom.rescale }));
  for (const t of plan.twins) push(twinsOf, t.slice.object, { frame: t.slice.frame, keep: t.keep, rescale: t.slice.geom.rescale });
  const failed: DecodeOutcome['failed'] = [];
  const pendingTwins: { keep: number; slice: VoxelArray; rescale: Rescale }[] = [];
  const objects = [...new Set([...perObject.keys(), ...twinsOf.keys()])].sort((a, b) => a - b);
  const bytesPer = DTYPE_BYTES[dtype];
  // frames that are a plain copy of file bytes (same sample type as the volume, no per-slice LUT, no twin to compare)
  const direct = (object: number): number | undefined => {
    const src = sources[object]!;
    const slots = perObject.get(object);
    const o = src.header;
    if (!src.pixelsInto || spp !== 1 || !plan.rescale || twinsOf.has(object) || slots?.length !== 1 || slots[0]!.frame !== 0) return undefined;
    if (o.rows !== rows || o.columns !== cols || o.bitsAllocated !== h.bitsAllocated || o.pixelRepresentation !== h.pixelRepresentation || o.bitsAllocated / 8 !== bytesPer) return undefined;
    return slots[0]!.k;
  };
  const decodeHere = async (object: number) => {
    try {
      const k = direct(object);
      if (k !== undefined) {
        const o = sources[object]!.header;
        if (scratch) {
          if (await sources[object]!.pixelsInto!(scratch)) {
            const values = viewAs(dtype, scratch);
            applyBitsStored(values, o.bitsStored, o.bitsAllocated, o.pixelRepresentation);
            await putSlice(values, k, undefined);
            tick();
            return;
          }
        } else {
          const slot = stream ? await stream.slot() : new Uint8Array(data.buffer, data.byteOffset + k * n2 * bytesPer, n2 * bytesPer);
          let read = false;
          try {
            read = await sources[object]!.pixelsInto!(slot);
          } finally {
            if (!read) stream?.drop(slot);
          }
          if (read) {
            applyBitsStored(stream ? viewAs(dtype, slot) : data.subarray(k * n2, (k + 1) * n2), o.bitsStored, o.bitsAllocated, o.pixelRepresentation);
            if (stream) stream.kept(slot, k);
            else sink?.placed(data, k, n2);
            tick();
            return;
          }
        }
      }
      const pixels = await sources[object]!.pixels();
      const frameOf = (f: number) => {
        if ((f + 1) * n2 * spp > pixels.length) throw new GatedError('decode_failed', `frame ${f + 1} is missing from the decoded pixels`);
        return pixels.subarray(f * n2 * spp, (f + 1) * n2 * spp);
      };
      for (const { frame, k, rescale } of perObject.get(object) ?? []) await putSlice(frameOf(frame), k, plan.rescale ? undefined : rescale);
      // compared after every kept slice is in place (a copy may come before its original)
      for (const { frame, keep, rescale } of twinsOf.get(object) ?? []) pendingTwins.push({ keep, slice: frameOf(frame).slice(), rescale });
    } catch (e) {
      failed.push({ object, error: toGatedError(e, 'decode_failed') });
    }
    tick();
  };
  // Compressed grey frames go to decoding threads (decode_pool.ts) when there are enough of them; the
  // frames come back as stored values and are placed exactly as decodeHere places them.
  const pooled = (object: number) => {
    const src = sources[object]!;
    const codec = TRANSFER_SYNTAXES.get(src.header.transferSyntaxUID)?.codec;
    return spp === 1 && h.bitsAllocated >= 8 && src.codestreams !== undefined && !twinsOf.has(object) && codec !== undefined && POOL_CODECS.has(codec);
  };
  const pooledFrames = objects.filter(pooled).reduce((n, o) => n + (perObject.get(o)?.length ?? 0), 0);
  const firstPooled = objects.find(pooled);
  const pool = pooledFrames >= POOL_MIN_FRAMES ? takeDecodePool(limits, firstPooled === undefined ? undefined : TRANSFER_SYNTAXES.get(sources[firstPooled]!.header.transferSyntaxUID)?.codec) : undefined;
  // objects whose file no longer matches the plan's geometry: decoded by decodeHere, after the pool's
  const later: number[] = [];
  // codestreams() calls take turns: they may share one read buffer
  let reading: Promise<unknown> = Promise.resolve();
  const decodeOnPool = async (pool: DecodePool, object: number) => {
    try {
      const turn = reading.then(() => sources[object]!.codestreams!((n) => pool.codestreamBuffer(n)));
      reading = turn.catch(() => undefined);
      const cs = await turn;
      const o = cs?.header;
      if (!cs || !o || o.rows !== rows || o.columns !== cols || o.samplesPerPixel !== 1 || o.bitsAllocated !== h.bitsAllocated || o.pixelRepresentation !== h.pixelRepresentation) {
        later.push(object);
        return;
      }
      const spec = { rows, columns: cols, samplesPerPixel: 1, bitsAllocated: o.bitsAllocated, bitsStored: o.bitsStored, pixelRepresentation: o.pixelRepresentation, photometric: o.photometric };
      const settled = await Promise.allSettled(cs.frames.map((f, i) => pool.decode(cs.codec, f, spec, i)));
      const decoded = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      try {
        // the first frame that failed, in frame order, as decodePixels reports it
        const bad = settled.find((r) => r.status === 'rejected');
        if (bad) throw (bad as PromiseRejectedResult).reason;
        for (const { frame, k, rescale } of perObject.get(object) ?? []) {
          const src = decoded[frame];
          if (!src) throw new GatedError('decode_failed', `frame ${frame + 1} is missing from the decoded pixels`);
          await putSlice(src, k, plan.rescale ? undefined : rescale);
        }
      } finally {
        for (const d of decoded) pool.release(d);
      }
    } catch (e) {
      failed.push({ object, error: toGatedError(e, 'decode_failed') });
    }
    tick();
  };
  // decodeHere on the reading thread takes its turn with the codestreams() reads (shared read buffers)
  const decodeInTurn = (object: number) => {
    const turn = reading.then(() => decodeHere(object));
    reading = turn.catch(() => undefined);
    return turn;
  };
  try {
    const inflight: Promise<void>[] = [];
    for (const object of objects) {
      // One turn of the event loop per object. Reads and decodes here are synchronous underneath their
      // promises, so without it the decoding threads' frames (and the streamed writes' completions) were
      // handled only after the last object: the helpers looked busy and the reading thread decoded
      // nearly every frame itself (6 of 300 went to a helper).
      await eventLoopTurn();
      if (pool && pooled(object)) {
        // the reading thread is a decoder too: it takes a file itself while the helpers have enough queued
        if (pool.queued() >= pool.size * 2) await decodeInTurn(object);
        else inflight.push(decodeOnPool(pool, object));
        // a few objects per helper in flight: enough to keep each busy, little memory held
        if (inflight.length >= pool.size * 3) await inflight.shift();
        continue;
      }
      await Promise.all(inflight.splice(0)); // decodeHere's reads may share the buffer codestreams() reads into
      await decodeHere(object);
    }
    await Promise.all(inflight);
    for (const object of later) await decodeHere(object);
  } finally {
    pool?.close();
  }
  // in object order, whichever thread finished first
  failed.sort((a, b) => a.object - b.object);
  if (failed.length > 0) return { volume: undefined, failed };
  const probe = allocate(dtype, n2 * spp);
  for (const { keep, slice, rescale } of pendingTwins) {
    place(probe, slice, 0, n2, 1, spp, plan.rescale ? undefined : rescale);
    for (let s = 0; s < spp; s++) {
      const base = (s * nSlices + keep) * n2;
      for (let p = 0; p < n2; p++) {
        if (probe[s * n2 + p] !== data[base + p]) {
          throw new GatedError('series_inconsistent', 'two slices at the same position hold different pixels and no acquisition, echo or temporal index tells them apart', { details: { slice: keep } });
        }
      }
    }
  }
  // adding an intercept rewrites the values in place: slices reported so far are no longer final
  if (!stream && plan.rescale && (plan.rescale.slope !== 1 || plan.rescale.intercept !== 0)) sink?.invalidated(data);
  const real: { data: VoxelArray; dtype: DType; rescale?: Rescale } = stream
    ? { data: allocate(outcome!.dtype, 0), dtype: outcome!.dtype, ...(outcome!.carried ? { rescale: outcome!.carried } : {}) }
    : plan.rescale
      ? applyLosslessRescale(data, dtype, plan.rescale)
      : { data, dtype };
  const volume: Volume = { data: real.data, ...stackGeometry(plan, spp), dtype: real.dtype, meta: stackMeta(plan, real.rescale) };
  return { volume, failed };
}

/**
 * Slope 1 and an integer intercept: data + intercept, in the stored type when every value still fits,
 * else in its signed widening (uint8/int8 → int16, uint16/int16 → int32). Anything else stays carried.
 */
export function applyLosslessRescale(data: VoxelArray, dtype: DType, r: Rescale): { data: VoxelArray; dtype: DType; rescale?: Rescale } {
  if (r.slope === 1 && r.intercept === 0) return { data, dtype };
  const carried = { data, dtype, rescale: { slope: r.slope, intercept: r.intercept } };
  if (!addsIntercept(r, dtype)) return carried;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const target = interceptTypes(dtype).find((t) => fits(t, lo + r.intercept, hi + r.intercept));
  if (!target) return carried;
  const out = target === dtype ? data : allocate(target, data.length);
  for (let i = 0; i < data.length; i++) out[i] = (data[i] as number) + r.intercept;
  return { data: out, dtype: target };
}

/**
 * applyLosslessRescale's outcome when every stored value the headers allow (BitsStored, signedness) leads to
 * it, whatever the values are: the type, the intercept to add, or the modality LUT carried. Undefined when
 * only the values can decide (the volume is then needed whole).
 */
export function rescaleFromHeaders(plan: StackPlan, stored: DType): { dtype: DType; add: number; carried?: Rescale } | undefined {
  const r = plan.rescale!;
  if (r.slope === 1 && r.intercept === 0) return { dtype: stored, add: 0 };
  const carried = { dtype: stored, add: 0, carried: { slope: r.slope, intercept: r.intercept } };
  const candidates = interceptTypes(stored);
  if (!addsIntercept(r, stored) || candidates.length === 0) return carried;
  const signed = isSigned(stored);
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of plan.order) {
    const bits = Math.min(s.header.bitsStored, s.header.bitsAllocated);
    lo = Math.min(lo, signed ? -(2 ** (bits - 1)) : 0);
    hi = Math.max(hi, signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1);
  }
  // the first candidate must hold every value the headers allow: values that fit a later one only might
  // also fit an earlier one, and then the values decide
  if (!fits(candidates[0]!, lo + r.intercept, hi + r.intercept)) return undefined;
  return { dtype: candidates[0]!, add: r.intercept };
}

/** Shape, spacing and affine of the volume a plan gives (samples per pixel `spp`). */
export function stackGeometry(plan: StackPlan, spp: number): Pick<Volume, 'shape' | 'spacing' | 'affine'> {
  const h = plan.order[0]!.header;
  const shape = spp === 3 ? [h.columns, h.rows, plan.nz, 3] : plan.nt > 1 ? [h.columns, h.rows, plan.nz, plan.nt] : [h.columns, h.rows, plan.nz];
  return { shape, spacing: plan.spacing, affine: plan.affine };
}

/** The meta of the volume a plan gives, with the modality LUT left carried (`rescale`), if any. */
export function stackMeta(plan: StackPlan, rescale: Rescale | undefined): Volume['meta'] {
  const h = plan.order[0]!.header;
  const spp = h.samplesPerPixel;
  const warnings = [...plan.warnings];
  for (const w of plan.order.flatMap((s) => s.header.warnings)) if (!warnings.some((x) => x.code === w.code)) warnings.push({ ...w });
  const g0 = plan.order[0]!.geom;
  return {
    format: 'dicom',
    components: spp === 3 ? 'rgb' : 'scalar',
    orientation: axisCodes(plan.affine),
    warnings,
    transferSyntaxUID: h.transferSyntaxUID,
    photometric: h.photometric,
    sopInstanceUIDs: sopUids(plan),
    ...(rescale ? { rescale } : {}),
    ...(h.modality ? { modality: h.modality } : {}),
    ...(g0.window ? { window: { ...g0.window } } : {}),
    ...(h.studyInstanceUID ? { studyInstanceUID: h.studyInstanceUID } : {}),
    ...(h.seriesInstanceUID ? { seriesInstanceUID: h.seriesInstanceUID } : {}),
    ...(h.frameOfReferenceUID ? { frameOfReferenceUID: h.frameOfReferenceUID } : {}),
    ...(h.seriesNumber !== undefined ? { seriesNumber: h.seriesNumber } : {}),
    ...(h.seriesDescription ? { seriesDescription: h.seriesDescription } : {}),
    ...(h.sopClassUID ? { sopClassUID: h.sopClassUID } : {}),
    ...(h.patient ? { patient: { ...h.patient } } : {}),
  };
}

export function storedType(h: Pick<DicomHeader, 'bitsAllocated' | 'pixelRepresentation'>): DType {
  if (h.bitsAllocated <= 8) return h.pixelRepresentation ? 'int8' : 'uint8';
  if (h.bitsAllocated === 16) return h.pixelRepresentation ? 'int16' : 'uint16';
  return h.pixelRepresentation ? 'int32' : 'uint32';
}

// --- internal ---

const WIDER: Partial<Record<DType, DType>> = { uint8: 'int16', int8: 'int16', uint16: 'int32', int16: 'int32' };
const RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
};

/** Slope 1 and an integer intercept on integer values: the intercept may be added exactly. */
function addsIntercept(r: Rescale, dtype: DType): boolean {
  return r.slope === 1 && Number.isInteger(r.intercept) && dtype !== 'float32' && dtype !== 'float64';
}

/** The types values + intercept may take, in order of preference: the stored type if signed, then its widening. */
function interceptTypes(dtype: DType): DType[] {
  return [...(isSigned(dtype) ? [dtype] : []), ...(WIDER[dtype] ? [WIDER[dtype]] : [])];
}

function isSigned(dtype: DType): boolean {
  return dtype === 'int8' || dtype === 'int16' || dtype === 'int32';
}

function fits(t: DType, lo: number, hi: number): boolean {
  return lo >= RANGE[t]![0] && hi <= RANGE[t]![1];
}

function push<T>(m: Map<number, T[]>, key: number, value: T): void {
  const list = m.get(key);
  if (list) list.push(value);
  else m.set(key, [value]);
}

/** The SOPInstanceUID of each slice of the z axis (the same UID repeated for frames of one object). */
function sopUids(plan: StackPlan): string[] {
  return plan.order.slice(0, plan.nz).map((s) => s.header.sopInstanceUID ?? '');
}

/** Frame (row-major, samples interleaved) → slice k of the x-fastest volume (colour planar on the 4th axis). */
function place(dst: VoxelArray, src: VoxelArray, k: number, n2: number, nSlices: number, spp: number, rescale?: Rescale): void {
  const slope = rescale?.slope ?? 1;
  const inter = rescale?.intercept ?? 0;
  for (let s = 0; s < spp; s++) {
    const base = (s * nSlices + k) * n2;
    if (spp === 1 && !rescale) {
      dst.set(src as never, base);
      continue;
    }
    for (let p = 0; p < n2; p++) dst[base + p] = (src[p * spp + s] as number) * slope + inter;
  }
}
