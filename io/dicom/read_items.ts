/**
 * DICOM files → volumes. Pass 1 parses headers only (small), groups and sorts them; pass 2 decodes each
 * file straight into its slot of the output buffer, so peak memory stays near one volume plus one file.
 * A file that fails is reported in `rejected` and the rest goes on.
 */
import { toGatedError } from '../../core/errors.ts';
import { axisCodes } from '../geometry.ts';
import type { InputItem, ReadContext, Rejection, SeriesSummary } from '../types.ts';
import { allocate, type DType, type IoWarning, type Volume, type VoxelArray } from '../volume.ts';
import { groupStacks, type SliceRecord } from './group.ts';
import { parseDicom, parseDicomHeader, type DicomHeader } from './parse.ts';
import { resampleStack } from './resample.ts';
import { planStack, type StackPlan } from './series.ts';

export interface DicomReadResult {
  volumes: Volume[];
  series: SeriesSummary[];
  warnings: IoWarning[];
  rejected: Rejection[];
}

export async function readDicomItems(items: InputItem[], ctx: ReadContext): Promise<DicomReadResult> {
  const rejected: Rejection[] = [];
  const headers: DicomHeader[] = [];
  const itemOf: InputItem[] = [];
  const total = items.length * 2;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    try {
      headers.push(await readHeaderOf(item, ctx, i));
      itemOf.push(item);
    } catch (e) {
      const err = toGatedError(e, 'not_dicom');
      rejected.push({ name: item.name, code: err.code, message: err.message });
    }
    ctx.onProgress?.(i + 1, total, 'reading headers');
  }
  const volumes: Volume[] = [];
  const series: SeriesSummary[] = [];
  const warnings: IoWarning[] = [];
  let done = items.length;
  for (const stack of groupStacks(headers)) {
    let plan: StackPlan;
    try {
      plan = planStack(stack);
    } catch (e) {
      const err = toGatedError(e, 'series_inconsistent');
      for (const s of stack.slices) rejected.push({ name: s.header.sourceName, code: err.code, message: err.message });
      continue;
    }
    const { volume, failed } = await decodeStack(plan, headers, itemOf, ctx, () => ctx.onProgress?.(++done, total, 'decoding'));
    rejected.push(...failed);
    if (!volume) continue;
    const out = ctx.resample && plan.irregular ? resampleStack(volume, plan) : volume;
    volumes.push(out);
    const h = plan.order[0]!.header;
    series.push({
      ...(h.seriesInstanceUID ? { seriesInstanceUID: h.seriesInstanceUID } : {}),
      ...(h.seriesNumber !== undefined ? { seriesNumber: h.seriesNumber } : {}),
      ...(h.seriesDescription ? { description: h.seriesDescription } : {}),
      ...(h.modality ? { modality: h.modality } : {}),
      files: new Set(plan.order.map((s) => s.object)).size,
      shape: out.shape,
      warnings: out.meta.warnings,
    });
    warnings.push(...out.meta.warnings);
  }
  ctx.onProgress?.(total, total, 'done');
  return { volumes, series, warnings, rejected };
}

// --- internal ---

const HEAD_BYTES = 64 * 1024;

/** Header from the file head when the item can give one; the whole file when the head is not enough. */
async function readHeaderOf(item: InputItem, ctx: ReadContext, index: number): Promise<DicomHeader> {
  if (item.readHead && item.size > HEAD_BYTES) {
    const head = await item.readHead(HEAD_BYTES);
    try {
      return parseDicomHeader(head, { limits: ctx.limits, name: item.name, index, fileSize: item.size });
    } catch {
      // a data set longer than the head (or deflated): fall through to the whole file
    }
  }
  return parseDicomHeader(await item.read(), { limits: ctx.limits, name: item.name, index });
}

async function decodeStack(plan: StackPlan, headers: DicomHeader[], items: InputItem[], ctx: ReadContext, tick: () => void): Promise<{ volume: Volume | undefined; failed: Rejection[] }> {
  const h = plan.order[0]!.header;
  const cols = h.columns;
  const rows = h.rows;
  const spp = h.samplesPerPixel;
  const n2 = rows * cols;
  const nSlices = plan.nz * plan.nt;
  const stored = storedType(h);
  const dtype: DType = plan.rescale ? stored : 'float32';
  const data = allocate(dtype, n2 * nSlices * spp);
  const failed: Rejection[] = [];
  // slot of each (object, frame)
  const slots = new Map<number, { frame: number; k: number; rec: SliceRecord }[]>();
  plan.order.forEach((rec, k) => {
    const list = slots.get(rec.object) ?? [];
    list.push({ frame: rec.frame, k, rec });
    slots.set(rec.object, list);
  });
  for (const [object, list] of slots) {
    const item = items[object]!;
    try {
      const obj = await parseDicom(await item.read(), { limits: ctx.limits, name: item.name, index: headers[object]!.sourceIndex });
      for (const { frame, k, rec } of list) {
        const src = obj.pixels.subarray(frame * n2 * spp, (frame + 1) * n2 * spp);
        place(data, src, k, n2, nSlices, spp, plan.rescale ? undefined : rec.geom.rescale);
      }
    } catch (e) {
      const err = toGatedError(e, 'decode_failed');
      failed.push({ name: item.name, code: err.code, message: err.message });
    }
    tick();
  }
  if (failed.length > 0) {
    // a stack with holes would be silently wrong; its files are reported instead
    return { volume: undefined, failed: failed.concat(list(slots, items, failed)) };
  }
  const warnings = [...plan.warnings, ...dedupe(plan.order.flatMap((s) => s.header.warnings))];
  const g0 = plan.order[0]!.geom;
  const shape = spp === 3 ? [cols, rows, plan.nz, 3 * plan.nt] : plan.nt > 1 ? [cols, rows, plan.nz, plan.nt] : [cols, rows, plan.nz];
  const volume: Volume = {
    data,
    shape,
    spacing: spp === 3 && plan.spacing.length === 3 ? [...plan.spacing, 1] : plan.spacing,
    affine: plan.affine,
    dtype,
    meta: {
      format: 'dicom',
      components: spp === 3 ? 'rgb' : 'scalar',
      orientation: axisCodes(plan.affine),
      warnings,
      transferSyntaxUID: h.transferSyntaxUID,
      photometric: h.photometric,
      sopInstanceUIDs: plan.order.slice(0, plan.nz).map((s) => s.header.sopInstanceUID ?? ''),
      ...(plan.rescale && (plan.rescale.slope !== 1 || plan.rescale.intercept !== 0) ? { rescale: plan.rescale } : {}),
      ...(h.modality ? { modality: h.modality } : {}),
      ...(g0.window ? { window: g0.window } : {}),
      ...(h.studyInstanceUID ? { studyInstanceUID: h.studyInstanceUID } : {}),
      ...(h.seriesInstanceUID ? { seriesInstanceUID: h.seriesInstanceUID } : {}),
      ...(h.frameOfReferenceUID ? { frameOfReferenceUID: h.frameOfReferenceUID } : {}),
      ...(h.seriesNumber !== undefined ? { seriesNumber: h.seriesNumber } : {}),
      ...(h.seriesDescription ? { seriesDescription: h.seriesDescription } : {}),
      ...(h.sopClassUID ? { sopClassUID: h.sopClassUID } : {}),
      ...(h.patient ? { patient: h.patient } : {}),
    },
  };
  return { volume, failed };
}

function list(slots: Map<number, unknown>, items: InputItem[], failed: Rejection[]): Rejection[] {
  const bad = new Set(failed.map((f) => f.name));
  return [...slots.keys()].map((o) => items[o]!.name).filter((n) => !bad.has(n)).map((name) => ({ name, code: 'series_inconsistent', message: 'not loaded: another file of its series could not be decoded' }));
}

function storedType(h: DicomHeader): DType {
  if (h.bitsAllocated <= 8) return h.pixelRepresentation ? 'int8' : 'uint8';
  if (h.bitsAllocated === 16) return h.pixelRepresentation ? 'int16' : 'uint16';
  return h.pixelRepresentation ? 'int32' : 'uint32';
}

/** Frame (row-major, samples interleaved) → slice k of the x-fastest volume (colour planar on the 4th axis). */
function place(dst: VoxelArray, src: VoxelArray, k: number, n2: number, nSlices: number, spp: number, rescale?: { slope: number; intercept: number }): void {
  if (spp === 1) {
    if (!rescale) {
      dst.set(src as never, k * n2);
      return;
    }
    for (let p = 0; p < n2; p++) dst[k * n2 + p] = (src[p] as number) * rescale.slope + rescale.intercept;
    return;
  }
  for (let s = 0; s < spp; s++) {
    const base = (s * nSlices + k) * n2;
    for (let p = 0; p < n2; p++) dst[base + p] = src[p * spp + s]!;
  }
}

function dedupe(ws: { code: string; message: string }[]): IoWarning[] {
  const seen = new Set<string>();
  return ws.filter((w) => (seen.has(w.code) ? false : (seen.add(w.code), true)));
}
