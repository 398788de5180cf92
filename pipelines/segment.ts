/**
 * `segment`: inputs (files, folders with DICOM series, zips, NIfTI, images) → label maps in the source geometry.
 * The model is loaded once for the batch. Per case: decode in the sandbox, preprocess as the model's manifest
 * says, slice-wise inference with on-the-fly argmax, 3D clean-up, back to the source grid, then NIfTI (same
 * affine), DICOM SEG for DICOM sources, PNG for 2D images, and preview overlays. Each output is written to a
 * temp file, fsynced and renamed, and the run manifest line is appended only after them, so a kill at any
 * moment leaves no partial file and `--resume` redoes exactly the unfinished inputs; reruns are byte-identical.
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, stat, unlink, open as openFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeFileAtomic } from '../core/atomic.ts';
import { DEFAULT_LIMITS, resolveLimits } from '../core/limits.ts';
import { GatedError, toGatedError } from '../core/errors.ts';
import { VERSION } from '../core/version.ts';
import { writePng } from '../io/image/write.ts';
import { loadInput, type LoadOptions } from '../io/load.ts';
import type { LoadResult, Rejection } from '../io/types.ts';
import { sandboxModeFor } from '../io/sandbox_guard.ts';
import { runSandboxed } from '../io/sandbox.ts';
import type { DicomStreamOutcome } from '../io/dicom/stream_plan.ts';
import { gunzipPrefix } from '../io/nifti/gunzip.ts';
import { DATATYPES, parseNiftiHeader } from '../io/nifti/header.ts';
import { bestAffine, rescaleOf } from '../io/nifti/read.ts';
import { writeNiftiFile } from '../io/nifti/write.ts';
import { axisMapTo, flipInPlace, reorient, reorientGeometry, type AxisMap } from '../io/orient.ts';
import { writeDicomSeg, type SegmentDef } from '../io/seg/write.ts';
import { sniffFormat } from '../io/sniff.ts';
import { realValues, type IoWarning, type Volume } from '../io/volume.ts';
import { inputId, RunManifest, shard, type RunRecord, type RunSettings } from './manifest.ts';
import { fillHoles, keepLargestComponent } from './postprocess.ts';
import { normalizerLike, prepare, sourceNormalizer, streamsStatistics, type Normalizer } from './preprocess.ts';
import { overlayPng, reportHtml, representativeSlices, colorOf, type ReportCase } from './report.ts';
import { roundTimings, StageClock } from './segment_timings.ts';
import { compileAhead, compilesAhead, predictLabels } from './segment_volume.ts';
import { arraySource, dicomSource, flippedSource, openNiftiSlices, type FileSliceSource, type NiftiSlices, type SliceSource } from './slice_source.ts';
import type { TaskModel } from './task_model.ts';

export type SegFormat = 'nifti' | 'dicom-seg' | 'png';

export interface SegmentCaseOptions {
  tta?: boolean;
  /** Keep the largest component per class; default from the model's manifest. */
  largestComponent?: boolean;
  fillHoles?: boolean;
  maxSide?: number;
  onProgress?: (done: number, total: number) => void;
  /** Milliseconds per sub-stage are added here (keys `segment.<stage>`). */
  timings?: Record<string, number>;
  /**
   * The input volume's voxel buffer may hold the labels (written over it as inference goes): one volume less in
   * memory, but the input is destroyed and `canonical.image` is absent. For callers that need no previews.
   */
  consumeInput?: boolean;
}

export interface SegmentedVolume {
  /** Labels on the source grid (same shape and affine as the input volume). */
  labels: Volume;
  /**
   * The image (its stored slices; absent with consumeInput) and labels on the canonical grid, for previews, and
   * the slices previews show (none with consumeInput).
   */
  canonical: { image?: SliceSource; labels: SliceSource; shape: number[]; representative: number[] };
  volumesMl: Record<string, number>;
  warnings: string[];
}

/** One volume through the model; the result lies on the input's own grid. */
export async function segmentVolume(volume: Volume, model: TaskModel, opts: SegmentCaseOptions = {}): Promise<SegmentedVolume> {
  const m = model.manifest;
  if (m.task !== 'segment') throw new GatedError('config', `model '${m.name}' is a ${m.task} model, not a segmentation model`);
  const warnings: string[] = [];
  const clock = new StageClock(opts.timings);
  let v = volume;
  if (v.meta.components === 'rgb') {
    v = toLuma(v);
    warnings.push('colour image converted to grey (luma) for a grey-scale model');
  }
  if ((v.shape[3] ?? 1) > 1) {
    warnings.push(`4D input: only the first of ${v.shape[3]} volumes was segmented`);
    v = firstVolume(v);
  }
  const map: AxisMap = m.input.canonical ? axisMapTo(v.affine) : { perm: [0, 1, 2], flip: [false, false, false] };
  const header = { shape: v.shape.slice(0, 3), spacing: v.spacing.slice(0, 3), affine: v.affine.map((r) => [...r]) };
  // the GPU compiles its shaders for this volume's slices while the CPU reorients it and takes its statistics
  const canonShape = map.perm.map((p) => header.shape[p]!);
  const compiled = compileAhead(model, canonShape, map.perm.map((p) => header.spacing[p]!), normalizerLike(m.input.normalization, v.meta.rescale), { tta: opts.tta ?? false, ...(opts.maxSide ? { maxSide: opts.maxSide } : {}) });
  clock.lap('segment.compileStart');
  const pre = prepare(v, m.input.normalization, { canonical: m.input.canonical });
  clock.lap('segment.prepare');
  await compiled;
  clock.lap('segment.compileWait');
  // from here on only the canonical copy is needed: drop our references so a large input can be collected
  volume = undefined as never;
  v = undefined as never;
  const shape = pre.volume.shape.slice(0, 3);
  const grid = { shape, spacing: pre.volume.spacing.slice(0, 3), affine: pre.volume.affine };
  const image = opts.consumeInput ? undefined : arraySource(pre.volume.data, shape);
  return labelVolume(model, pre.volume.data, grid, header, map, pre.norm, opts, clock, warnings, image);
}

/**
 * Whether `segmentSource` can take a volume with this header: one scalar volume whose stored voxel order is
 * already the model's grid (no reorientation copy), or with `flips` one whose axes only need reversing (a source
 * that reverses them as it reads), and whose normaliser's statistics come from one pass.
 */
export function segmentsSliceBySlice(header: Pick<Volume, 'shape' | 'affine' | 'dtype' | 'meta'>, model: TaskModel, opts: { flips?: boolean } = {}): boolean {
  const m = model.manifest;
  if (m.task !== 'segment' || header.meta.components !== 'scalar' || (header.shape[3] ?? 1) > 1) return false;
  const map = modelMap(header.affine, model);
  if (opts.flips ? !map.perm.every((p, i) => p === i) : !isIdentity(map)) return false;
  return streamsStatistics(header.dtype, header.meta.rescale?.slope ?? 1, m.input.normalization);
}

/**
 * `segmentVolume` of a volume that is never held whole: its stored slices are read from `source` as the
 * statistics pass and each group of slices need them. Same labels, byte for byte. Only where
 * `segmentsSliceBySlice` says so; `header` is the volume without its voxels. `flipped`: the source presents
 * the slices already flipped onto the model's grid (see dicomSource); the labels are flipped back in place.
 */
export async function segmentSource(header: Volume, source: SliceSource, model: TaskModel, opts: SegmentCaseOptions = {}, flipped = false): Promise<SegmentedVolume> {
  const m = model.manifest;
  if (m.task !== 'segment') throw new GatedError('config', `model '${m.name}' is a ${m.task} model, not a segmentation model`);
  if (!segmentsSliceBySlice(header, model, { flips: flipped })) throw new GatedError('internal', 'this volume needs preparing in memory (segmentVolume)');
  const clock = new StageClock(opts.timings);
  const map = modelMap(header.affine, model);
  const shape = header.shape.slice(0, 3);
  const source3 = { shape, spacing: header.spacing.slice(0, 3), affine: header.affine.map((r) => [...r]) };
  const grid = { shape, ...reorientGeometry(source3.affine, source3.spacing, shape, map) };
  const compiled = compileAhead(model, grid.shape, grid.spacing, normalizerLike(m.input.normalization, header.meta.rescale), { tta: opts.tta ?? false, ...(opts.maxSide ? { maxSide: opts.maxSide } : {}) });
  clock.lap('segment.compileStart');
  const norm = sourceNormalizer(source, header.meta.rescale?.slope ?? 1, header.meta.rescale?.intercept ?? 0, m.input.normalization);
  clock.lap('segment.prepare');
  await compiled;
  clock.lap('segment.compileWait');
  return labelVolume(model, source, grid, source3, map, norm, opts, clock, [], opts.consumeInput ? undefined : source);
}

export interface SegmentBatchOptions extends SegmentCaseOptions {
  outDir: string;
  formats?: SegFormat[];
  resume?: boolean;
  part?: string;
  /** Identifies the model in records (a name or folder). */
  modelName: string;
  device: string;
  load?: LoadOptions;
  report?: boolean;
  onCase?: (done: number, total: number, name: string, record: RunRecord) => void;
  onSlices?: (done: number, total: number, name: string) => void;
  /**
   * Read an uncompressed NIfTI already on the model's grid, or a folder holding one plain uncompressed DICOM
   * series whose axes need at most flipping, slice by slice instead of whole (default true; the labels are the
   * same bytes either way).
   */
  streamInput?: boolean;
}

export interface BatchSummary {
  total: number;
  done: number;
  skipped: number;
  rejected: number;
  failed: number;
  manifest: string;
  report?: string;
  records: RunRecord[];
}

interface CaseInput {
  path: string;
  /** Stable name for outputs: from the input's path relative to its argument, never from identifiers inside it. */
  name: string;
  id: string;
}

/** What changes a case's outputs besides its input: the weights and the options that reach the labels or the files. */
function segmentSettings(model: TaskModel, opts: SegmentBatchOptions): RunSettings {
  return { weights: model.sha256, formats: opts.formats ? [...opts.formats].sort().join(',') : null, tta: opts.tta ?? false, largestComponent: opts.largestComponent ?? null, fillHoles: opts.fillHoles ?? null, maxSide: opts.maxSide ?? null };
}

export async function segmentBatch(inputs: string[], model: TaskModel, opts: SegmentBatchOptions): Promise<BatchSummary> {
  const outDir = resolve(opts.outDir);
  await mkdir(outDir, { recursive: true });
  let cases = await collectCases(inputs);
  if (opts.part) cases = shard(cases, opts.part, (c) => c.name);
  const manifest = await RunManifest.open(join(outDir, 'manifest.jsonl'));
  await removeStaleTemps(outDir);
  const records: RunRecord[] = [];
  const reportCases: ReportCase[] = [];
  let skipped = 0;
  const started = new Date().toISOString();
  const settings = segmentSettings(model, opts);
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i]!;
    if (opts.resume && manifest.isDone(c.id, settings)) {
      skipped++;
      const r = manifest.last(c.id)!;
      records.push(r);
      reportCases.push({ name: c.name, status: 'done', outputs: r.outputs.filter((o) => !o.endsWith('.png') || !o.includes('/previews/')).map((o) => relative(outDir, o)), previews: r.outputs.filter((o) => o.includes('/previews/')).map((o) => relative(outDir, o)), ms: r.ms, warnings: ['(from an earlier run)'] });
      opts.onCase?.(i + 1, cases.length, c.name, r);
      continue;
    }
    const t0 = Date.now();
    const before = { ...model.replays.stats };
    let record: RunRecord;
    let rc: ReportCase;
    try {
      const res = await segmentCase(c, model, outDir, opts);
      record = { id: c.id, input: c.path, status: 'done', outputs: res.outputs, ms: Date.now() - t0, timings: res.timings, memory: res.memory, inputRead: res.inputRead, ...forwardsSince(model, before), model: { name: opts.modelName, sha256: model.sha256 }, settings, device: opts.device, versions: { gatedvision: VERSION }, at: new Date().toISOString() };
      rc = { name: c.name, status: 'done', outputs: res.outputs.filter((o) => !o.includes('/previews/')).map((o) => relative(outDir, o)), previews: res.previews.map((o) => relative(outDir, o)), volumesMl: res.volumesMl, ms: record.ms, warnings: res.warnings };
    } catch (e) {
      const err = toGatedError(e, 'internal');
      const inputFault = err.code !== 'internal' && err.code !== 'kernel' && err.code !== 'io_error' && err.code !== 'missing_dependency';
      record = { id: c.id, input: c.path, status: inputFault ? 'rejected' : 'failed', code: err.code, message: err.message, outputs: [], ms: Date.now() - t0, model: { name: opts.modelName, sha256: model.sha256 }, settings, device: opts.device, versions: { gatedvision: VERSION }, at: new Date().toISOString() };
      rc = { name: c.name, status: record.status, code: err.code, message: err.message, outputs: [], previews: [], ms: record.ms, warnings: [] };
    }
    await manifest.append(record);
    records.push(record);
    reportCases.push(rc);
    opts.onCase?.(i + 1, cases.length, c.name, record);
  }
  let report: string | undefined;
  if (opts.report ?? true) {
    report = join(outDir, 'report.html');
    await writeFileAtomic(report, reportHtml({ title: 'gatedvision segmentation report', model: opts.modelName, sha256: model.sha256, device: opts.device, version: VERSION, started }, reportCases, model.manifest.classes));
  }
  const count = (s: string) => records.filter((r) => r.status === s).length;
  return { total: cases.length, done: count('done') - skipped, skipped, rejected: count('rejected'), failed: count('failed'), manifest: manifest.path, ...(report ? { report } : {}), records };
}

/** Turns the command-line inputs into cases: files as they are, each folder's DICOM files as one case. */
export async function collectCases(inputs: string[]): Promise<CaseInput[]> {
  const out: CaseInput[] = [];
  for (const arg of inputs) {
    let info;
    try {
      info = await stat(arg);
    } catch (e) {
      throw toGatedError(e, 'not_found', `cannot open input '${arg}'`);
    }
    if (info.isFile()) {
      out.push({ path: resolve(arg), name: stem(basename(arg)), id: inputId(resolve(arg), info.size, info.mtimeMs) });
      continue;
    }
    if (!info.isDirectory()) throw new GatedError('unsupported_format', `'${arg}' is neither a file nor a folder`);
    const files = await walk(arg);
    let dicomSize = 0;
    let dicomMtime = 0;
    let dicomCount = 0;
    for (const f of files) {
      const head = await readHead(f.path);
      const kind = sniffFormat(head);
      if (kind === 'dicom') {
        dicomCount++;
        dicomSize += f.size;
        dicomMtime = Math.max(dicomMtime, f.mtimeMs);
      } else if (kind !== 'unknown') {
        const rel = relative(arg, f.path);
        out.push({ path: resolve(f.path), name: stem(rel.replace(/[\\/]/g, '_')), id: inputId(resolve(f.path), f.size, f.mtimeMs) });
      }
    }
    if (dicomCount > 0) out.push({ path: resolve(arg), name: stem(basename(resolve(arg))), id: inputId(`${resolve(arg)}#dicom${dicomCount}`, dicomSize, dicomMtime) });
  }
  out.sort((a, b) => a.path.localeCompare(b.path));
  // two inputs with one stem (a/x.nii.gz, b/x.nii.gz) get their id as a suffix so neither overwrites the other
  const seen = new Map<string, number>();
  for (const c of out) seen.set(c.name, (seen.get(c.name) ?? 0) + 1);
  const uniq = new Set<string>();
  return out.filter((c) => (uniq.has(c.id) ? false : (uniq.add(c.id), true))).map((c) => (seen.get(c.name)! > 1 ? { ...c, name: `${c.name}-${c.id.slice(0, 8)}` } : c));
}

// --- internal ---

/** The model's forward passes since `before` by how they ran, when any was recorded or replayed (WebGPU). */
export function forwardsSince(model: TaskModel, before: TaskModel['replays']['stats']): { forwards?: RunRecord['forwards'] } {
  const now = model.replays.stats;
  const f = { direct: now.direct - before.direct, recorded: now.recorded - before.recorded, replayed: now.replayed - before.replayed };
  return tf.getBackend() === 'webgpu' ? { forwards: f } : {};
}

async function segmentCase(c: CaseInput, model: TaskModel, outDir: string, opts: SegmentBatchOptions): Promise<{ outputs: string[]; previews: string[]; volumesMl: Record<string, number>; warnings: string[]; timings: Record<string, number>; memory: Record<string, number>; inputRead: 'streamed' | 'whole' }> {
  // load / segment / write, and the sub-stages of segment (`segment.*`) that segmentVolume adds
  const timings: Record<string, number> = { load: 0, segment: 0, write: 0 };
  const memory: Record<string, number> = { start: mib(process.memoryUsage.rss()) };
  let t = performance.now();
  const lap = (k: 'load' | 'segment' | 'write') => {
    const now = performance.now();
    timings[k] = timings[k]! + now - t;
    t = now;
  };
  // an uncompressed NIfTI whose voxels are already on the model's grid is never held whole: its header is read
  // here and its slices as inference needs them (the labels are the only volume in memory)
  // (a DICOM series likewise: its headers are planned in the sandbox, its slices read here, file by file)
  const streamed: StreamedInput | undefined = opts.streamInput === false ? undefined : (streamableNifti(c.path, model, opts.load) ?? (await streamableDicom(c.path, model, opts.load)));
  try {
    const loaded = streamed ? { volumes: [streamed.header], warnings: streamed.warnings ?? streamed.header.meta.warnings, rejected: streamed.rejected ?? ([] as Rejection[]) } : await loadWhole(c, model, opts, timings);
    lap('load');
    memory.loaded = mib(process.memoryUsage.rss());
    if ('early' in loaded) {
      await loaded.early;
      timings['segment.compileWait'] = (timings['segment.compileWait'] ?? 0) + performance.now() - t;
    }
    const res = await segmentLoaded(c, loaded, streamed, model, outDir, opts, timings, lap);
    memory.peak = mib(peakRss());
    return { ...res, timings: roundTimings(timings), memory, inputRead: streamed ? 'streamed' : 'whole' };
  } finally {
    streamed?.source.close();
  }
}

/**
 * The input decoded whole: DICOM and NIfTI in a worker thread (JavaScript and WebAssembly codecs only, same caps;
 * the volume's buffer is handed over rather than copied, and no second Node process holds a copy of it beside
 * ours), images in a child process (they need the native sharp). `early`: shaders compiling meanwhile.
 */
async function loadWhole(c: CaseInput, model: TaskModel, opts: SegmentBatchOptions, timings: Record<string, number>): Promise<LoadResult & { early: Promise<void> }> {
  // a NIfTI header tells the slices' shape: the GPU compiles for them while the sandbox decodes the voxels
  // (a failure there comes back from segmentVolume's own compileAhead, which returns the same promise)
  const early = compileFromHeader(c.path, model, opts, timings).catch(() => undefined);
  const mode = opts.load?.sandboxMode ?? sandboxModeFor(c.path);
  const loaded = await loadInput(c.path, { ...opts.load, sandboxMode: mode }).catch((e: unknown) => {
    // a bundle shipped without the worker's entry file still decodes, in a child process
    if (mode === 'worker' && (e as GatedError).code === 'missing_dependency') return loadInput(c.path, { ...opts.load, sandboxMode: 'process' });
    throw e;
  });
  return { ...loaded, early };
}

/** An input read slice by slice: its header as a Volume without voxels, its slices, what loading it reports. */
interface StreamedInput {
  header: Volume;
  source: FileSliceSource;
  /** The source reverses axes as it reads (segmentSource's `flipped`). */
  flipped?: boolean;
  warnings?: IoWarning[];
  rejected?: Rejection[];
}

/**
 * A folder holding one plain DICOM series that `segmentSource` can take: planned in the decoding sandbox (the
 * headers are untrusted input), its slices then read here. Undefined for anything else, a failed plan included:
 * the loader then reads it whole and reports what is wrong, as it always has.
 */
async function streamableDicom(path: string, model: TaskModel, load: LoadOptions | undefined): Promise<StreamedInput | undefined> {
  try {
    if (!statSync(path).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const limits = resolveLimits(load?.limits);
  let plan: DicomStreamOutcome;
  try {
    plan =
      load?.sandbox === false
        ? await (await import('../io/dicom/stream_plan.ts')).planDicomStream(path, limits)
        : await runSandboxed<DicomStreamOutcome>('dicomStreamPlan', { path, opts: { limits } }, { limits, mode: load?.sandboxMode ?? sandboxModeFor(path) });
  } catch {
    return undefined;
  }
  if (!plan.streamable || !segmentsSliceBySlice(plan.header, model, { flips: true })) return undefined;
  const { flip } = modelMap(plan.header.affine, model);
  return { header: plan.header, source: dicomSource(plan, flip), flipped: true, warnings: plan.warnings, rejected: plan.rejected };
}

/** An uncompressed NIfTI that `segmentSource` can take, opened for reading slice by slice; else undefined. */
function streamableNifti(path: string, model: TaskModel, load: LoadOptions | undefined): NiftiSlices | undefined {
  const s = openNiftiSlices(path, resolveLimits(load?.limits), basename(path));
  if (s && !segmentsSliceBySlice(s.header, model)) {
    s.source.close();
    return undefined;
  }
  return s;
}

/** Segments each volume of a loaded input (or the one volume of `source`) and writes its outputs. */
async function segmentLoaded(c: CaseInput, loaded: Pick<LoadResult, 'volumes' | 'warnings' | 'rejected'>, streamed: Pick<StreamedInput, 'source' | 'flipped'> | undefined, model: TaskModel, outDir: string, opts: SegmentBatchOptions, timings: Record<string, number>, lap: (k: 'load' | 'segment' | 'write') => void): Promise<{ outputs: string[]; previews: string[]; volumesMl: Record<string, number>; warnings: string[] }> {
  if (loaded.volumes.length === 0) {
    const first = loaded.rejected[0];
    throw new GatedError((first?.code as never) ?? 'unsupported_format', first ? `no usable volume (${loaded.rejected.length} file(s) rejected; first: ${first.code}: ${first.message})` : 'no usable volume in this input');
  }
  const formats = opts.formats ?? ['nifti'];
  const outputs: string[] = [];
  const previews: string[] = [];
  const warnings: string[] = loaded.warnings.map((w: IoWarning) => `${w.code}: ${w.message}`);
  if (loaded.rejected.length) warnings.push(`${loaded.rejected.length} file(s) in this input were not used (first: ${loaded.rejected[0]!.code})`);
  const volumesMl: Record<string, number> = {};
  const multi = loaded.volumes.length > 1;
  for (let s = 0; s < loaded.volumes.length; s++) {
    const name = multi ? `${c.name}_s${String(s + 1).padStart(2, '0')}` : c.name;
    // the voxels go to segmentVolume alone (it lets them go once normalised); we keep a header copy
    const vol = { ...loaded.volumes[s]!, data: new Uint8Array(0) };
    // without previews nothing reads the image after inference: its buffer takes the labels
    const caseOpts = { ...opts, timings, consumeInput: opts.report === false, onProgress: (d: number, total: number) => opts.onSlices?.(d, total, name) };
    const res = streamed ? await segmentSource(takeVolume(loaded.volumes, s), streamed.source, model, caseOpts, streamed.flipped) : await segmentVolume(takeVolume(loaded.volumes, s), model, caseOpts);
    lap('segment');
    warnings.push(...res.warnings);
    for (const [k, v] of Object.entries(res.volumesMl)) volumesMl[multi ? `${k} (${s + 1})` : k] = v;
    // previews first: they are the last use of the image, which can go before the label files are written
    const zs = opts.report === false ? [] : res.canonical.representative;
    for (const z of zs) {
      const p = join(outDir, 'previews', `${name}_z${String(z).padStart(3, '0')}.png`);
      // the one slice read from the image, and its labels, as a volume of one slice
      await writeFileAtomic(p, await overlayPng(res.canonical.image!.read(z, z + 1), res.canonical.labels.read(z, z + 1), [...res.canonical.shape.slice(0, 2), 1], 0));
      previews.push(p);
    }
    res.canonical = undefined as never;
    const is2d = (vol.shape[2] ?? 1) === 1;
    if (formats.includes('nifti') || (formats.includes('png') && !is2d)) {
      const p = join(outDir, `${name}.seg.nii.gz`);
      await writeNiftiFile(p, res.labels, { gzip: true, description: `gatedvision ${model.manifest.name}` });
      outputs.push(p);
    }
    if (formats.includes('png') && is2d) {
      const p = join(outDir, `${name}.seg.png`);
      await writeFileAtomic(p, await writePng(res.labels, { bitDepth: 8 }));
      outputs.push(p);
    }
    if (formats.includes('dicom-seg')) {
      if (vol.meta.format !== 'dicom') warnings.push('DICOM SEG needs a DICOM source; written as NIfTI only');
      else {
        const p = join(outDir, `${name}.seg.dcm`);
        await writeFileAtomic(p, dicomSeg(res.labels, vol, model, c));
        outputs.push(p);
      }
    }
    lap('write');
  }
  if (outputs.length === 0) throw new GatedError('config', `no output format applies to this input (asked for ${formats.join(', ')})`);
  return { outputs: [...outputs, ...previews], previews, volumesMl, warnings };
}

/**
 * Starts compileAhead from a NIfTI file's header alone (shape, affine, rescale), so that shader compilation
 * overlaps decoding. Anything unexpected just skips it: segmentVolume compiles from the decoded volume anyway,
 * and the same plan is compiled once.
 */
async function compileFromHeader(path: string, model: TaskModel, opts: SegmentCaseOptions, timings: Record<string, number>): Promise<void> {
  if (!compilesAhead() || !/\.nii(\.gz)?$/i.test(path)) return;
  let started: Promise<void>;
  try {
    const fh = await openFile(path, 'r');
    let head: Uint8Array;
    try {
      const buf = new Uint8Array(1 << 16);
      head = buf.subarray(0, (await fh.read(buf, 0, buf.length, 0)).bytesRead);
    } finally {
      await fh.close();
    }
    if (sniffFormat(head.subarray(0, 4)) === 'gzip') head = gunzipPrefix(head, 544);
    const h = parseNiftiHeader(head, Number.MAX_SAFE_INTEGER, DEFAULT_LIMITS);
    if ((DATATYPES[h.datatype]?.components ?? 1) !== 1 || h.dims.length < 3) return;
    const { affine } = bestAffine(h);
    const m = model.manifest;
    const map: AxisMap = m.input.canonical ? axisMapTo(affine) : { perm: [0, 1, 2], flip: [false, false, false] };
    const shape = h.dims.slice(0, 3);
    const spacing = [0, 1, 2].map((c) => Math.hypot(affine[0]![c]!, affine[1]![c]!, affine[2]![c]!));
    const rescale = rescaleOf(h);
    const t0 = performance.now();
    started = compileAhead(model, map.perm.map((p) => shape[p]!), map.perm.map((p) => spacing[p]!), normalizerLike(m.input.normalization, rescale), { tta: opts.tta ?? false, ...(opts.maxSide ? { maxSide: opts.maxSide } : {}) });
    // the JavaScript thread's share of compiling, spent while the sandbox decodes (it overlaps `load`)
    timings['load.compileStart'] = performance.now() - t0;
  } catch {
    return; // the loader reads the header properly and says what is wrong with it
  }
  await started;
}

function dicomSeg(labels: Volume, src: Volume, model: TaskModel, c: CaseInput): Uint8Array {
  const m = src.meta;
  if (!m.studyInstanceUID || !m.seriesInstanceUID || !m.sopInstanceUIDs?.length || !m.sopClassUID) throw new GatedError('bad_geometry', 'the DICOM source lacks the UIDs a SEG must reference');
  const segments: SegmentDef[] = model.manifest.classes.slice(1).map((n, i) => ({ label: i + 1, name: n, algorithmName: model.manifest.name, color: colorOf(i + 1) }));
  return writeDicomSeg(
    labels,
    { studyInstanceUID: m.studyInstanceUID, seriesInstanceUID: m.seriesInstanceUID, frameOfReferenceUID: m.frameOfReferenceUID ?? m.studyInstanceUID, sopClassUID: m.sopClassUID, sopInstanceUIDs: m.sopInstanceUIDs, shape: src.shape.slice(0, 3), affine: src.affine, ...(m.patient ? { patient: m.patient } : {}) },
    segments,
    { seriesDescription: `${model.manifest.name} segmentation`, softwareVersion: VERSION, uidSeed: `${c.id}:${model.sha256}:${m.seriesInstanceUID}`, contentDateTime: new Date(0) },
  );
}

interface Grid {
  shape: number[];
  spacing: number[];
  affine: number[][];
}

const IDENTITY: AxisMap = { perm: [0, 1, 2], flip: [false, false, false] };

/** The axis map from a grid with this affine to the model's (none for a model that takes grids as stored). */
function modelMap(affine: number[][], model: TaskModel): AxisMap {
  return model.manifest.input.canonical ? axisMapTo(affine) : IDENTITY;
}

function isIdentity(map: AxisMap): boolean {
  return map.perm.every((p, i) => p === i) && map.flip.every((f) => !f);
}

/**
 * Inference, clean-up and the way back to the source grid, for a volume prepared on the model's grid (`grid`;
 * `map` took the source grid `header` there).
 */
async function labelVolume(model: TaskModel, data: ArrayLike<number> | SliceSource, grid: Grid, header: Grid, map: AxisMap, norm: Normalizer, opts: SegmentCaseOptions, clock: StageClock, warnings: string[], image: SliceSource | undefined): Promise<SegmentedVolume> {
  const m = model.manifest;
  const { shape } = grid;
  const labels = await predictLabels(model, data, shape, grid.spacing, { tta: opts.tta ?? false, ...(opts.consumeInput ? { reuseData: true } : {}), ...(opts.maxSide ? { maxSide: opts.maxSide } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), ...(opts.timings ? { timings: opts.timings } : {}) }, undefined, norm);
  clock.reset();
  const K = m.classes.length;
  for (let c = 1; c < K; c++) {
    if (opts.largestComponent ?? m.postprocess?.largestComponent ?? false) keepLargestComponent(labels, shape, c);
    clock.lap('segment.largestComponent');
    if (opts.fillHoles ?? m.postprocess?.fillHoles ?? false) fillHoles(labels, shape, c);
    clock.lap('segment.fillHoles');
  }
  const voxelMl = (grid.spacing[0]! * grid.spacing[1]! * grid.spacing[2]!) / 1000;
  const counts = labelCounts(labels, K);
  const volumesMl: Record<string, number> = {};
  for (let c = 1; c < K; c++) volumesMl[m.classes[c]!] = counts[c]! * voxelMl;
  clock.lap('segment.volumes');
  // back to the source grid: the inverse permutation/flips, then the source's own affine, exactly (a source
  // already on the canonical grid takes the labels as they are, without a copy)
  // (flips alone are undone in place: a flip is its own inverse, and no second label volume is needed)
  const representative = opts.consumeInput ? [] : representativeSlices(labels, shape);
  const canon: Volume = { data: labels, shape, spacing: grid.spacing.slice(0, 3), affine: grid.affine, dtype: labels instanceof Uint8Array ? 'uint8' : 'uint16', meta: { format: 'nifti', components: 'scalar', warnings: [] } };
  const inv = inverse(map);
  const flipsOnly = inv.perm.every((p, i) => p === i);
  if (flipsOnly && !isIdentity(inv)) flipInPlace(labels, shape, inv.flip);
  const back = flipsOnly ? canon : reorient(canon, inv);
  const out: Volume = { ...back, shape: header.shape, spacing: header.spacing, affine: header.affine, meta: { format: 'nifti', components: 'scalar', warnings: [], source: `labels by ${m.name}` } };
  clock.lap('segment.restore');
  const canonLabels = flipsOnly ? flippedSource(labels, shape, inv.flip) : arraySource(labels, shape);
  return { labels: out, canonical: { ...(image ? { image } : {}), labels: canonLabels, shape, representative }, volumesMl, warnings };
}

/** Temp files of writes cut short by a kill (core/atomic.ts names them .<name>.<12 hex>.tmp). */
async function removeStaleTemps(outDir: string): Promise<void> {
  for (const d of [outDir, join(outDir, 'previews')]) {
    const names = await readdir(d).catch(() => [] as string[]);
    for (const n of names) if (/^\..+\.[0-9a-f]{12}\.tmp$/.test(n)) await unlink(join(d, n)).catch(() => undefined);
  }
}

/**
 * This process's own peak resident memory, in bytes. getrusage's maxRSS outlives exec: fork counts the pages it
 * shares with the parent against the child, and exec keeps that count as the new program's maximum, so a CLI
 * started by a large parent (a benchmark holding its inputs) reports the parent's size as its own peak. Linux's VmHWM belongs to the address space exec made; elsewhere, maxRSS.
 */
export function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // no procfs
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Bytes → whole MiB, as the manifest records resident memory. */
function mib(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}

function takeVolume(volumes: Volume[], i: number): Volume {
  const v = volumes[i]!;
  volumes[i] = undefined as never;
  return v;
}

/** Voxels per label (a 32-bit count table indexed by the label is what keeps this one fast pass). */
function labelCounts(labels: Uint8Array | Uint16Array, K: number): Uint32Array | Float64Array {
  if (K === 2 && labels instanceof Uint8Array && labels.byteOffset % 4 === 0) {
    // 0/1 labels: four bytes summed per 32-bit add, each byte lane flushed before it can reach 256
    const w = new Uint32Array(labels.buffer, labels.byteOffset, labels.length >> 2);
    let ones = 0;
    for (let i = 0; i < w.length; ) {
      let lanes = 0;
      for (const end = Math.min(w.length, i + 255); i < end; i++) lanes += w[i]!;
      ones += (lanes & 255) + ((lanes >>> 8) & 255) + ((lanes >>> 16) & 255) + (lanes >>> 24);
    }
    for (let i = w.length << 2; i < labels.length; i++) ones += labels[i]!;
    return Float64Array.from([labels.length - ones, ones]);
  }
  const counts = new Uint32Array(labels instanceof Uint8Array ? 256 : 65536);
  for (let i = 0; i < labels.length; i++) counts[labels[i]!]!++;
  return counts.subarray(0, K);
}

function inverse(map: AxisMap): AxisMap {
  const perm: [number, number, number] = [0, 1, 2];
  const flip: [boolean, boolean, boolean] = [false, false, false];
  for (let o = 0; o < 3; o++) {
    perm[map.perm[o]!] = o;
    flip[map.perm[o]!] = map.flip[o]!;
  }
  return { perm, flip };
}

function toLuma(v: Volume): Volume {
  const n = (v.shape[0] ?? 1) * (v.shape[1] ?? 1) * (v.shape[2] ?? 1);
  const real = realValues(v);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = 0.299 * real[i]! + 0.587 * real[n + i]! + 0.114 * real[2 * n + i]!;
  const { rescale: _r, ...meta } = v.meta;
  return { ...v, data, dtype: 'float32', shape: v.shape.slice(0, 3), spacing: v.spacing.slice(0, 3), meta: { ...meta, components: 'scalar' } };
}

function firstVolume(v: Volume): Volume {
  const n = (v.shape[0] ?? 1) * (v.shape[1] ?? 1) * (v.shape[2] ?? 1);
  return { ...v, data: v.data.slice(0, n), shape: v.shape.slice(0, 3), spacing: v.spacing.slice(0, 3) };
}

function stem(name: string): string {
  const s = name.replace(/\.(nii\.gz|nii|dcm|dicom|zip|png|jpe?g|tiff?|webp|gz)$/i, '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._]+/, '');
  return s.length ? s.slice(0, 120) : 'input';
}

async function walk(dir: string, limit = 200_000): Promise<{ path: string; size: number; mtimeMs: number }[]> {
  const out: { path: string; size: number; mtimeMs: number }[] = [];
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        const s = await stat(p);
        out.push({ path: p, size: s.size, mtimeMs: s.mtimeMs });
        if (out.length > limit) throw new GatedError('too_large', `more than ${limit} files under ${dir}`);
      }
    }
  }
  return out;
}

async function readHead(path: string): Promise<Uint8Array> {
  const fh = await openFile(path, 'r');
  try {
    const buf = new Uint8Array(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
