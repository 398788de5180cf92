/**
 * The plan of a DICOM series without its voxels, for a reader that fetches each slice's stored bytes itself
 * (segment reading a series slice by slice). Only a series the loader would assemble as one plain volume
 * qualifies: one stack of single-frame, native little-endian grey objects whose pixels the loader copies straight
 * from the file, no duplicate or missing slices, and a modality LUT whose outcome the headers alone decide.
 * Anything else is "not streamable" and goes to the loader. The folder is walked, and headers parsed, rejected
 * and warned about, exactly as the loader does, so the run reports the same files and warnings either way.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { toGatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import { walkFolder } from '../load.ts';
import { sniffFormat } from '../sniff.ts';
import type { InputItem, ReadContext, Rejection } from '../types.ts';
import { DTYPE_BYTES, type DType, type IoWarning, type Volume } from '../volume.ts';
import { groupStacks } from './group.ts';
import { HEAD_BYTES, type HeaderRead } from './head.ts';
import { headerFromHead, readHeaderOf } from './read_items.ts';
import { planStack } from './series.ts';
import { rescaleFromHeaders, stackGeometry, stackMeta, storedType } from './stack.ts';

/** Where slice k's stored values lie: `bytes` bytes at `offset` of `path`, a file of `fileSize` bytes. */
export interface DicomSliceBytes {
  path: string;
  offset: number;
  bytes: number;
  fileSize: number;
  bitsStored: number;
  bitsAllocated: number;
  pixelRepresentation: 0 | 1;
}

export interface DicomStreamPlan {
  streamable: true;
  /** Shape, spacing, affine, dtype and meta exactly as the loader gives them; `data` is empty. */
  header: Volume;
  /** The type of the values in the files, before the intercept. */
  stored: DType;
  /** Added to every stored value (a modality LUT applied by the loader, exactly, in `header.dtype`). */
  add: number;
  /** In volume order (slice k of the loader's volume). */
  slices: DicomSliceBytes[];
  warnings: IoWarning[];
  rejected: Rejection[];
}

export type DicomStreamOutcome = DicomStreamPlan | { streamable: false; reason: string };

/** The plan of the one series in folder `root`, or why the loader must read it. */
export async function planDicomStream(root: string, limits: Limits): Promise<DicomStreamOutcome> {
  const no = (reason: string): DicomStreamOutcome => ({ streamable: false, reason });
  let files;
  try {
    if (!statSync(root).isDirectory()) return no('not a folder');
    files = await walkFolder(resolve(root), limits);
  } catch {
    return no('the folder cannot be walked (the loader reports why)');
  }
  const rejected: Rejection[] = [...files.rejected];
  const ctx: ReadContext = { limits };
  const dicom: { item: InputItem; path: string }[] = [];
  const others: { name: string; format: string }[] = [];
  const heads = new Map<InputItem, HeaderRead>();
  for (const item of files.items) {
    const head = item.readHead ? await item.readHead(HEAD_BYTES) : await item.read();
    const format = sniffFormat(head.subarray(0, 512));
    if (format !== 'dicom') {
      others.push({ name: item.name, format });
      continue;
    }
    if (item.path === undefined) return no('an item is not a file');
    // total 0: no decoding threads are started ahead, there is nothing here to decode
    const h = headerFromHead(item, head, ctx, dicom.length, 0);
    if (h) heads.set(item, h);
    dicom.push({ item, path: item.path });
  }
  if (dicom.length === 0) return no('no DICOM file');
  for (const o of others) rejected.push({ name: o.name, code: 'not_dicom', message: `skipped: ${o.format} file among DICOM files` });
  const reads: (HeaderRead & { path: string })[] = [];
  for (const [i, { item, path }] of dicom.entries()) {
    try {
      reads.push({ ...(heads.get(item) ?? (await readHeaderOf(item, ctx, i))), path });
    } catch (e) {
      const err = toGatedError(e, 'not_dicom');
      rejected.push({ name: item.name, code: err.code, message: err.message });
    }
  }
  if (reads.length === 0) return no('no usable DICOM header');
  if (reads.some((r) => !r.direct)) return no('an object is compressed, multi-frame, colour or otherwise not a plain copy of file bytes');
  const stacks = groupStacks(reads.map((r) => r.header));
  if (stacks.length !== 1) return no('several series or stacks');
  let plans;
  try {
    plans = planStack(stacks[0]!);
  } catch {
    return no('the stack cannot be planned');
  }
  if (plans.length !== 1) return no('several volumes in one stack');
  const plan = plans[0]!;
  if (plan.nt !== 1 || plan.twins.length > 0 || plan.irregular || !plan.rescale || plan.order.length !== plan.nz || plan.order.length !== reads.length) return no('4D, duplicate, missing or unevenly spaced slices, or a modality LUT that varies');
  const h = plan.order[0]!.header;
  const stored = storedType(h);
  const n2 = h.rows * h.columns;
  const bytes = n2 * plan.nz * DTYPE_BYTES[stored];
  if (!Number.isSafeInteger(bytes) || bytes > limits.maxVoxelBytes) return no('too large');
  const slices: DicomSliceBytes[] = [];
  for (const s of plan.order) {
    const o = s.header;
    const direct = reads[s.object]!.direct!;
    // decodePlan's own test for a plain copy of the file's bytes
    if (s.frame !== 0 || o.rows !== h.rows || o.columns !== h.columns || o.bitsAllocated !== h.bitsAllocated || o.pixelRepresentation !== h.pixelRepresentation || o.bitsAllocated / 8 !== DTYPE_BYTES[stored] || direct.bytes !== n2 * DTYPE_BYTES[stored]) {
      return no('the slices differ in size or pixel format');
    }
    slices.push({ path: reads[s.object]!.path, offset: direct.offset, bytes: direct.bytes, fileSize: direct.fileSize, bitsStored: o.bitsStored, bitsAllocated: o.bitsAllocated, pixelRepresentation: o.pixelRepresentation as 0 | 1 });
  }
  const outcome = rescaleFromHeaders(plan, stored);
  if (!outcome) return no('the values decide what the modality LUT makes of them');
  const header: Volume = { data: new Uint8Array(0), ...stackGeometry(plan, 1), dtype: outcome.dtype, meta: stackMeta(plan, outcome.carried) };
  return { streamable: true, header, stored, add: outcome.add, slices, warnings: [...header.meta.warnings], rejected };
}
