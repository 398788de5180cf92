/**
 * The one entry point from a path to volumes: a DICOM file, folder or zip; a NIfTI file; an image.
 * `loadInput` decodes in a sandboxed child (see sandbox.ts); `loadInputDirect` does the same work in
 * this process and is what the child runs.
 */
import { closeSync, openSync, readSync, fstatSync, statSync } from 'node:fs';
import { setImmediate as eventLoopTurn } from 'node:timers/promises';
import { open, readdir, stat, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { GatedError, toGatedError } from '../core/errors.ts';
import { resolveLimits, type Limits } from '../core/limits.ts';
import { runSandboxed, type SandboxMode } from './sandbox.ts';
import { assertNativeAllowed } from './sandbox_guard.ts';
import { sniffFormat, type SniffedFormat } from './sniff.ts';
import type { InputItem, LoadResult, Progress, ReadContext, Rejection, SliceSink } from './types.ts';
import type { Volume } from './volume.ts';
import { HEAD_BYTES, type HeaderReads } from './dicom/head.ts';

export interface LoadOptions {
  limits?: Partial<Limits>;
  /** Decode in a child process with memory/time caps (default true). */
  sandbox?: boolean;
  /** Where the sandbox decodes: a child process (default) or a worker thread (see io/sandbox.ts). */
  sandboxMode?: SandboxMode;
  /** DICOM: resample irregular stacks onto a regular grid. */
  resample?: boolean;
  onProgress?: Progress;
  signal?: AbortSignal;
  /** In-process only (a function does not cross into the sandbox): DICOM slices as they are decoded. */
  slices?: SliceSink;
}

/** Loads every volume an input holds, decoding in a sandboxed child process by default. */
export async function loadInput(path: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const limits = resolveLimits(opts.limits);
  if (opts.sandbox === false) return loadInputDirect(path, opts);
  const { onProgress, signal, sandboxMode, ...rest } = opts;
  return runSandboxed<LoadResult>('load', { path, opts: { ...rest, limits, sandbox: false } }, { limits, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}), ...(sandboxMode ? { mode: sandboxMode } : {}) });
}

/** Same as loadInput, in this process (for trusted input, and inside the sandbox child). */
export async function loadInputDirect(path: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const limits = resolveLimits(opts.limits);
  const ctx: ReadContext = { limits, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), ...(opts.resample ? { resample: true } : {}), ...(opts.slices ? { slices: opts.slices } : {}) };
  let info;
  try {
    info = await stat(path);
  } catch (e) {
    throw toGatedError(e, 'not_found', `cannot open input`);
  }
  if (info.isDirectory()) {
    const { items, rejected } = await walkFolder(path, limits);
    return readItems(items, ctx, rejected);
  }
  if (!info.isFile()) throw new GatedError('unsupported_format', 'input is neither a file nor a folder');
  if (info.size > limits.maxFileBytes) {
    throw new GatedError('too_large', `input is ${info.size} bytes; the limit is ${limits.maxFileBytes}`);
  }
  const head = await readHead(path, 512);
  const format = sniffFormat(head);
  const name = baseName(path);
  switch (format) {
    case 'zip': {
      const { items, skipped } = await (await readers.zip()).openZip(await readBytes(path), limits);
      return readItems(items, ctx, skipped);
    }
    case 'dicom':
      return readItems([fileItem(path, name, info.size)], ctx, [], true);
    case 'nifti':
    case 'gzip':
      return single('nifti', (await readers.nifti()).readNifti(await readBytes(path), ctx, name));
    case 'png':
    case 'jpeg':
    case 'tiff':
    case 'webp':
      return single('image', await (await readers.image()).readImage(await readBytes(path), ctx, name));
    default:
      throw unsupported(format);
  }
}

/**
 * Each reader is loaded when an input needs it: the zip, gzip, NIfTI and DICOM libraries each cost tens
 * of ms to load, and the decoding process starts anew for every input.
 */
export const readers = {
  dicom: () => import('./dicom/read_items.ts'),
  nifti: () => import('./nifti/read.ts'),
  // sharp is native: a decoding worker thread refuses it and the input is read again in a child process
  image: () => {
    assertNativeAllowed('an image');
    return import('./image/read.ts');
  },
  zip: () => import('./archive.ts'),
};

// --- internal ---

function single(format: LoadResult['format'], volume: Volume): LoadResult {
  return {
    format,
    volumes: [volume],
    series: [{ files: 1, shape: volume.shape, warnings: volume.meta.warnings, ...(volume.meta.modality ? { modality: volume.meta.modality } : {}) }],
    warnings: [...volume.meta.warnings],
    rejected: [],
  };
}

/** A mix of files: DICOM items go to series assembly; a lone NIfTI or image is read as itself. */
async function readItems(items: InputItem[], ctx: ReadContext, rejected: Rejection[], strictSingle = false): Promise<LoadResult> {
  const dicom: InputItem[] = [];
  const others: { item: InputItem; format: SniffedFormat }[] = [];
  // DICOM headers parsed from the head read for sniffing (it usually holds the whole header): one read per file
  const headers: HeaderReads = new Map();
  let reader: Awaited<ReturnType<typeof readers.dicom>> | undefined;
  try {
    for (const [i, item] of items.entries()) {
      // reads here are blocking: a turn of the event loop now and then lets work started on other
      // threads go on (the volume being faulted in, decoding threads starting)
      if (i % 8 === 7) await eventLoopTurn();
      // sniff from the head only: a folder of DICOM files is read whole once, later, one file at a time
      const head = item.readHead ? await item.readHead(HEAD_BYTES) : await item.read();
      const format = sniffFormat(head.subarray(0, 512));
      if (format === 'dicom') {
        reader ??= await readers.dicom();
        const h = reader.headerFromHead(item, head, ctx, dicom.length, items.length);
        if (h) headers.set(item, h);
        dicom.push(item);
      } else others.push({ item, format });
    }
  } catch (e) {
    reader?.releaseWarm(); // what the first header started ahead (the decoding threads)
    throw e;
  }
  if (dicom.length > 0) {
    for (const { item, format } of others) rejected.push({ name: item.name, code: 'not_dicom', message: `skipped: ${format} file among DICOM files` });
    const res = await reader!.readDicomItems(dicom, ctx, headers);
    if (res.volumes.length === 0) {
      const first = [...rejected, ...res.rejected][0];
      if (strictSingle && first) throw new GatedError(first.code as never, first.message);
      throw new GatedError('series_inconsistent', `no volume could be assembled from ${dicom.length} DICOM file(s)`, { details: { rejected: res.rejected.length } });
    }
    return { format: 'dicom', volumes: res.volumes, series: res.series, warnings: res.warnings, rejected: [...rejected, ...res.rejected] };
  }
  if (others.length === 1) {
    const { item, format } = others[0]!;
    const bytes = await item.read();
    if (format === 'nifti' || format === 'gzip') return withRejected(single('nifti', (await readers.nifti()).readNifti(bytes, ctx, item.name)), rejected);
    if (format === 'png' || format === 'jpeg' || format === 'tiff' || format === 'webp') return withRejected(single('image', await (await readers.image()).readImage(bytes, ctx, item.name)), rejected);
    throw unsupported(format);
  }
  if (others.length === 0) throw new GatedError('not_dicom', 'the input holds no readable file', { details: { rejected: rejected.length } });
  throw new GatedError('unsupported_format', `the input holds ${others.length} non-DICOM files; pass them one at a time`);
}

function withRejected(r: LoadResult, rejected: Rejection[]): LoadResult {
  return { ...r, rejected: [...rejected, ...r.rejected] };
}

function unsupported(format: SniffedFormat): GatedError {
  return new GatedError(format === 'unknown' ? 'unsupported_format' : 'unsupported_format', `unrecognised input (${format}); expected DICOM, NIfTI, zip or PNG/JPEG/TIFF/WebP`);
}

export async function walkFolder(root: string, limits: Limits): Promise<{ items: InputItem[]; rejected: Rejection[] }> {
  const items: InputItem[] = [];
  const rejected: Rejection[] = [];
  const shared: SharedBuffer = { buf: new Uint8Array(0) };
  const heads: SharedBuffer = { buf: new Uint8Array(0) };
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = join(dir, e.name);
      const rel = relative(root, full);
      if (e.name.startsWith('.') || e.name === 'DICOMDIR' || e.name === '__MACOSX') continue;
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile()) {
        // one blocking stat per file: a thread-pool round trip each cost more than the stat itself
        const size = statSync(full).size;
        if (size > limits.maxFileBytes) {
          rejected.push({ name: rel, code: 'too_large', message: `file is ${size} bytes` });
          continue;
        }
        items.push(fileItem(full, rel, size, shared, heads));
        if (items.length > limits.maxFiles) throw new GatedError('too_large', `the folder holds more than ${limits.maxFiles} files`);
      }
      // symlinks and special files are never followed
    }
  }
  return { items, rejected };
}

interface SharedBuffer {
  buf: Uint8Array;
}

function fileItem(path: string, name: string, size: number, shared?: SharedBuffer, heads?: SharedBuffer): InputItem {
  // A series is hundreds of small files: read each in one blocking call instead of open/read/close
  // round trips through the thread pool (a third of the load time). Big files stay asynchronous.
  if (size <= SYNC_READ_BYTES) {
    return {
      name,
      path,
      size,
      read: async () => readSmall(path, Infinity),
      readHead: async (n) => readSmall(path, n, heads),
      ...(shared ? { readShared: async () => readSmall(path, Infinity, shared) } : {}),
      readRange: async (dst, position, expect) => readRange(path, dst, position, expect),
    };
  }
  return { name, path, size, read: () => readBytes(path), readHead: (n) => readHead(path, n), readRange: async (dst, position, expect) => readRange(path, dst, position, expect) };
}

const SYNC_READ_BYTES = 8 * 1024 * 1024;

/** The first n bytes (all of them for Infinity) of a small file, in its own ArrayBuffer or in `shared`. */
function readSmall(path: string, n: number, shared?: SharedBuffer): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    // the size is taken now, not from the folder walk: the file may have changed since (a head needs no size:
    // reading stops at the end of the file)
    const want = Number.isFinite(n) ? n : fstatSync(fd).size;
    if (shared && shared.buf.length < want) shared.buf = new Uint8Array(want);
    const out = shared ? shared.buf.subarray(0, want) : new Uint8Array(want);
    let got = 0;
    while (got < want) {
      const r = readSync(fd, out, got, want - got, got);
      if (r === 0) break;
      got += r;
    }
    return got === want ? out : out.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** Bytes from `position` straight into `dst`, if the file still has `size` bytes and holds them all. */
/** Fills `dst` from `position` of the file at `path`, if the file is `size` bytes long and holds them all; else false. */
export function readRange(path: string, dst: Uint8Array, position: number, size: number): boolean {
  const fd = openSync(path, 'r');
  try {
    if (fstatSync(fd).size !== size || position + dst.length > size) return false;
    let got = 0;
    while (got < dst.length) {
      const r = readSync(fd, dst, got, dst.length - got, position + got);
      if (r === 0) return false;
      got += r;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

function memoryItem(name: string, bytes: Uint8Array): InputItem {
  return { name, size: bytes.length, read: async () => bytes };
}

async function readBytes(path: string): Promise<Uint8Array> {
  const buf = await readFile(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

async function readHead(path: string, n: number): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return new Uint8Array(buf.buffer, buf.byteOffset, bytesRead);
  } finally {
    await fh.close();
  }
}

function baseName(path: string): string {
  return path.split(/[\\/]/).pop() ?? 'input';
}
