/**
 * DICOM files → volumes. Pass 1 parses headers only (small), groups and sorts them; pass 2 decodes each
 * object straight into its slot of the output buffer, so peak memory stays near one volume plus one file.
 * A file that fails is reported in `rejected` and the rest goes on: a file whose pixels cannot be decoded
 * leaves its stack, which is planned again without it (and then reports the gap as missing slices).
 * Names in results are the caller's item names; nothing read from a file ever names anything.
 */
import { setImmediate as eventLoopTurn } from 'node:timers/promises';
import { toGatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import type { InputItem, ReadContext, Rejection, SeriesSummary } from '../types.ts';
import type { IoWarning, Volume } from '../volume.ts';
import { groupStacks, type Stack } from './group.ts';
import { dropWarmDecodePool, POOL_CODECS, POOL_MIN_FRAMES, warmDecodePool } from './decode_pool.ts';
import { parseDicom, parseDicomFrames, parseDicomHeaderDirect } from './parse.ts';
import { TRANSFER_SYNTAXES } from './transfer_syntax.ts';
import { resampleStack } from './resample.ts';
import { planStack } from './series.ts';
import { decodePlan, type ObjectSource } from './stack.ts';
import { HEAD_BYTES, type HeaderRead, type HeaderReads } from './head.ts';

export interface DicomReadResult {
  volumes: Volume[];
  series: SeriesSummary[];
  warnings: IoWarning[];
  rejected: Rejection[];
}

/** `headers`: headers already parsed from heads read for sniffing (headerFromHead); the rest are read here. */
export async function readDicomItems(items: InputItem[], ctx: ReadContext, headers?: HeaderReads): Promise<DicomReadResult> {
  try {
    return await readItems(items, ctx, headers);
  } finally {
    releaseWarm();
  }
}

/** Ends what headerFromHead started ahead (the decoding threads) that no series took. */
export function releaseWarm(): void {
  dropWarmDecodePool();
}

async function readItems(items: InputItem[], ctx: ReadContext, headers?: HeaderReads): Promise<DicomReadResult> {
  const rejected: Rejection[] = [];
  const sources: ObjectSource[] = [];
  // like the shared read buffer, one decode buffer serves every object: each is placed before the next is decoded
  const scratch = { buf: new Uint8Array(0) };
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (i % 8 === 7) await eventLoopTurn(); // as in load.ts's header pass: work on other threads goes on
    try {
      const { header, direct } = headers?.get(item) ?? (await readHeaderOf(item, ctx, i));
      // decodePlan copies each object's pixels into the volume before it asks for the next: one shared read buffer serves them all
      const read = () => (item.readShared ? item.readShared() : item.read());
      const source: ObjectSource = {
        header,
        pixels: async () => (await parseDicom(await read(), { limits: ctx.limits, name: item.name, index: i, scratch })).pixels,
        codestreams: async (alloc) => parseDicomFrames(await read(), { limits: ctx.limits, name: item.name, index: i }, alloc),
      };
      // plain native slices go from the file straight into the volume (no read buffer, no second parse)
      if (direct && item.readRange) source.pixelsInto = async (dst) => dst.length === direct.bytes && item.readRange!(dst, direct.offset, direct.fileSize);
      sources.push(source);
    } catch (e) {
      const err = toGatedError(e, 'not_dicom');
      rejected.push({ name: item.name, code: err.code, message: err.message });
    }
    ctx.onProgress?.(i + 1, items.length * 2, 'reading headers');
  }
  let done = items.length;
  const res = await assembleSeries(sources, ctx, () => ctx.onProgress?.(Math.min(++done, items.length * 2), items.length * 2, 'decoding'));
  ctx.onProgress?.(items.length * 2, items.length * 2, 'decoding');
  return { ...res, rejected: [...rejected, ...res.rejected] };
}

/**
 * The header from a head already read (for sniffing), when that head decides it as readHeaderOf would:
 * the whole file, or HEAD_BYTES of a longer one holding the whole data set. Otherwise (or on any error)
 * undefined, and readHeaderOf reads it again and reports what is wrong.
 */
export function headerFromHead(item: InputItem, head: Uint8Array, ctx: ReadContext, index: number, total = 0): HeaderRead | undefined {
  let h: HeaderRead | undefined;
  try {
    if (head.length === item.size && item.size <= HEAD_BYTES) h = parseDicomHeaderDirect(head, { limits: ctx.limits, name: item.name, index });
    else if (item.readHead && item.size > HEAD_BYTES && head.length === HEAD_BYTES) {
      h = parseDicomHeaderDirect(head, { limits: ctx.limits, name: item.name, index, fileSize: item.size });
    }
  } catch {
    // decided later, by readHeaderOf
  }
  // a long compressed series: the decoding threads start (and load their codecs) while the headers are read
  const codec = h && TRANSFER_SYNTAXES.get(h.header.transferSyntaxUID)?.codec;
  if (codec && POOL_CODECS.has(codec) && total * h!.header.numberOfFrames >= POOL_MIN_FRAMES) warmDecodePool(ctx.limits, codec);
  return h;
}

/**
 * The header from a 64 KiB head when the item can give one (the whole file is then read once, to decode);
 * the whole file when the data set does not fit in the head.
 */
export async function readHeaderOf(item: InputItem, ctx: ReadContext, index: number): Promise<HeaderRead> {
  if (item.readHead && item.size > HEAD_BYTES) {
    try {
      return parseDicomHeaderDirect(await item.readHead(HEAD_BYTES), { limits: ctx.limits, name: item.name, index, fileSize: item.size });
    } catch {
      // longer data set, deflated body, or damage: the whole file decides
    }
  }
  return parseDicomHeaderDirect(await item.read(), { limits: ctx.limits, name: item.name, index });
}

/** Parsed objects (headers now, pixels on demand) → one volume per geometric stack. */
export async function assembleSeries(sources: readonly ObjectSource[], ctx: Pick<ReadContext, 'limits' | 'resample' | 'slices'>, tick: () => void = () => {}): Promise<DicomReadResult> {
  const volumes: Volume[] = [];
  const series: SeriesSummary[] = [];
  const warnings: IoWarning[] = [];
  const rejected: Rejection[] = [];
  const reject = (objects: Iterable<number>, code: string, message: string) => {
    for (const o of new Set(objects)) rejected.push({ name: sources[o]!.header.sourceName, code, message });
  };
  for (const stack of groupStacks(sources.map((s) => s.header))) {
    for (const { volume, files } of await buildStack(stack, sources, ctx, tick, reject)) {
      volumes.push(volume);
      const m = volume.meta;
      series.push({
        ...(m.seriesInstanceUID ? { seriesInstanceUID: m.seriesInstanceUID } : {}),
        ...(m.seriesNumber !== undefined ? { seriesNumber: m.seriesNumber } : {}),
        ...(m.seriesDescription ? { description: m.seriesDescription } : {}),
        ...(m.modality ? { modality: m.modality } : {}),
        files,
        shape: volume.shape,
        warnings: m.warnings,
      });
      warnings.push(...m.warnings);
    }
  }
  return { volumes, series, warnings, rejected };
}

// --- internal ---

async function buildStack(stack: Stack, sources: readonly ObjectSource[], ctx: Pick<ReadContext, 'limits' | 'resample' | 'slices'>, tick: () => void, reject: (objects: Iterable<number>, code: string, message: string) => void): Promise<{ volume: Volume; files: number }[]> {
  const { limits } = ctx;
  const resample = ctx.resample === true;
  const volumes: { volume: Volume; files: number }[] = [];
  let plans;
  try {
    plans = planStack(stack);
  } catch (e) {
    const err = toGatedError(e, 'series_inconsistent');
    reject(stack.slices.map((s) => s.object), err.code, err.message);
    return volumes;
  }
  for (let plan of plans) {
    // each retry drops at least one object, so this ends
    for (;;) {
      const objects = new Set([...plan.order, ...plan.twins.map((t) => t.slice)].map((s) => s.object));
      try {
        // a stack to be resampled needs its voxels: it is never streamed alone
        const { volume, failed } = await decodePlan(plan, sources, limits, tick, ctx.slices, { stream: !(resample && plan.irregular) });
        if (volume) {
          const out = resample && plan.irregular ? resampleStack(volume, plan, limits) : volume;
          volumes.push({ volume: out, files: objects.size });
          break;
        }
        for (const f of failed) reject([f.object], f.error.code, f.error.message);
        const bad = new Set(failed.map((f) => f.object));
        const rest = plan.order.filter((s) => !bad.has(s.object)).concat(plan.twins.map((t) => t.slice).filter((s) => !bad.has(s.object)));
        if (rest.length === 0) break;
        const keep = new Set(rest);
        const again = planStack({ ...plan.stack, slices: plan.stack.slices.filter((s) => keep.has(s)) });
        if (again.length !== 1) {
          reject(rest.map((s) => s.object), 'series_inconsistent', 'not loaded: the rest of its series no longer forms one stack');
          break;
        }
        plan = again[0]!;
      } catch (e) {
        const err = toGatedError(e, 'series_inconsistent');
        reject(objects, err.code, err.message);
        break;
      }
    }
  }
  return volumes;
}
