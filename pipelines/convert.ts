/**
 * Input → NIfTI/PNG files. Runs inside the decoding sandbox, so the decoded volume never crosses into
 * the caller: only the written paths and the findings come back (the caller's memory stays flat).
 * The readers and writers are imported where they run (in the child), so the calling process starts
 * with nothing but the sandbox supervisor loaded.
 */
import { unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { commitTempSibling, openTempSibling } from '../core/atomic.ts';
import { GatedError, toGatedError } from '../core/errors.ts';
import { resolveLimits } from '../core/limits.ts';
import type { LoadOptions } from '../io/load.ts';
import { runSandboxed } from '../io/sandbox.ts';
import { assertNativeAllowed } from '../io/sandbox_guard.ts';
import { releaseNow } from '../io/transfer.ts';
import type { LoadResult, SliceSink } from '../io/types.ts';
import type { Volume, VoxelArray } from '../io/volume.ts';

export type OutKind = 'nii' | 'nii.gz' | 'png';
export type ConvertTarget = { kind: 'file'; path: string; format: OutKind } | { kind: 'folder'; path: string };

export interface ConvertResult {
  outputs: string[];
  warnings: LoadResult['warnings'];
  rejected: LoadResult['rejected'];
}

/** Converts in a sandboxed child (or worker thread: opts.sandboxMode) unless opts.sandbox is false. */
export async function convertInput(input: string, target: ConvertTarget, opts: LoadOptions = {}): Promise<ConvertResult> {
  if (opts.sandbox === false) return convertInputDirect(input, target, opts);
  const limits = resolveLimits(opts.limits);
  const { onProgress, signal, sandboxMode, ...rest } = opts;
  return runSandboxed<ConvertResult>('convert', { input, target, opts: { ...rest, limits, sandbox: false } }, { limits, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}), ...(sandboxMode ? { mode: sandboxMode } : {}) });
}

export async function convertInputDirect(input: string, target: ConvertTarget, opts: LoadOptions = {}): Promise<ConvertResult> {
  if (target.kind === 'file' && target.format === 'nii') return convertToNii(input, target.path, opts);
  const [{ loadInputDirect }, { writeFileAtomic }] = await Promise.all([import('../io/load.ts'), import('../core/atomic.ts')]);
  const res = await loadInputDirect(input, { ...opts, sandbox: false });
  if (target.kind === 'file' && res.volumes.length > 1) {
    throw new GatedError('usage', `the input holds ${res.volumes.length} series; give a folder as output to write one file per series`);
  }
  const outputs: string[] = [];
  for (let i = 0; i < res.volumes.length; i++) {
    const v = res.volumes[i]!;
    const path = target.kind === 'file' ? target.path : join(target.path, `series-${String(i + 1).padStart(3, '0')}.nii.gz`);
    const kind = target.kind === 'file' ? target.format : 'nii.gz';
    await writeFileAtomic(path, await encode(v, kind));
    outputs.push(path);
    res.volumes[i] = undefined as never; // let the voxels go before the next series is written
  }
  return { outputs, warnings: res.warnings, rejected: res.rejected };
}

/** The description of an input without its voxels (what `info` needs), decoded in the sandbox. */
export async function describeInput(input: string, opts: LoadOptions = {}): Promise<LoadResult> {
  if (opts.sandbox === false) {
    const { loadInputDirect } = await import('../io/load.ts');
    return stripVoxels(await loadInputDirect(input, opts));
  }
  const limits = resolveLimits(opts.limits);
  const { onProgress, signal, ...rest } = opts;
  return runSandboxed<LoadResult>('describe', { input, opts: { ...rest, limits, sandbox: false } }, { limits, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) });
}

export function stripVoxels(res: LoadResult): LoadResult {
  return { ...res, volumes: res.volumes.map((v) => ({ ...v, data: new Uint8Array(0) })) };
}

// --- internal ---

/**
 * One .nii file, written the way writeFileAtomic writes (temporary sibling, fsync, rename, folder fsync)
 * but with a DICOM series' slices written while the next ones are decoded, so that most of the write
 * overlaps decoding. Whatever the streamed bytes cannot be trusted for (values changed after a slice was
 * written, a second decode attempt, NIfTI-2, another layout), the whole body is written again at the end.
 */
async function convertToNii(input: string, path: string, opts: LoadOptions): Promise<ConvertResult> {
  const [{ loadInputDirect }, { niftiParts }] = await Promise.all([import('../io/load.ts'), import('../io/nifti/write.ts')]);
  const { fh, tmp } = await openTempSibling(path);
  const stream = new SliceStream(fh);
  let closed = false;
  try {
    const res = await loadInputDirect(input, { ...opts, sandbox: false, slices: stream });
    if (res.volumes.length > 1) {
      throw new GatedError('usage', `the input holds ${res.volumes.length} series; give a folder as output to write one file per series`);
    }
    const v = res.volumes[0]!;
    const [header, ...rest] = niftiParts(v, { gzip: false });
    const body = rest[0]!;
    const streamed = (await stream.settle(v.data)) && rest.length === 1 && header!.length === NII_VOX_OFFSET && body.buffer === v.data.buffer && body.byteOffset === v.data.byteOffset;
    if (!streamed) await writeAll(fh, body, header!.length);
    await writeAll(fh, header!, 0);
    const size = header!.length + body.length;
    // every byte is in the file now: the volume's memory goes back while the fsync below waits
    res.volumes.length = 0;
    releaseNow(body.buffer);
    releaseNow(v.data.buffer);
    // an abandoned first attempt may have written past the end of the final volume
    await fh.truncate(size);
    await fh.sync();
    await fh.close();
    closed = true;
    await commitTempSibling(tmp, path);
    return { outputs: [path], warnings: res.warnings, rejected: res.rejected };
  } catch (e) {
    await stream.settle(undefined);
    if (!closed) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e instanceof GatedError ? e : toGatedError(e, 'io_error', `cannot write ${path}`);
  }
}

const SYNC_EVERY_BYTES = 32 * 1024 * 1024;

/**
 * Adjacent slices go out in one write of up to this many bytes (four 512x512 int16 slices): handing a
 * write to the thread pool costs this thread 20-40 µs, and one write per slice of a 300-slice series
 * was 5-10 ms of it. Larger writes showed no gain on a loaded 2-core machine and hold the file's
 * writes back from the flushes longer.
 */
const WRITE_BYTES = 2 * 1024 * 1024;

/** NIfTI-1's voxel offset: where slice k of a scalar volume starts is NII_VOX_OFFSET + its byte offset in the data. */
const NII_VOX_OFFSET = 352;

/** Writes reported slices at their place in the file; trusted only if every slice of the final buffer was written unchanged. */
class SliceStream implements SliceSink {
  private data: VoxelArray | undefined;
  private values = 0;
  private abandoned = false;
  private readonly pending: Promise<unknown>[] = [];
  private unsynced = 0;
  /** Values [from, to) of `data` placed and not yet handed to a write. */
  private run = { from: 0, to: 0 };

  constructor(private readonly fh: FileHandle) {}

  placed(data: VoxelArray, k: number, n2: number): void {
    if (this.abandoned) return;
    // a second buffer is a second decode attempt or a second series: earlier writes may race its own
    if (this.data !== undefined && this.data !== data) return this.abandon();
    this.data = data;
    this.values += n2;
    const from = k * n2;
    const run = this.run;
    // slices extend the run at either end (a series may be stored in falling slice order)
    if (from === run.to) run.to += n2;
    else if (from + n2 === run.from) run.from = from;
    else {
      this.flush();
      this.run = { from, to: from + n2 };
    }
    if ((this.run.to - this.run.from) * data.BYTES_PER_ELEMENT >= WRITE_BYTES) this.flush();
  }

  invalidated(): void {
    this.abandon();
  }

  /** Waits for every write; true when the file holds all of `data`, as it is now. */
  async settle(data: VoxelArray | undefined): Promise<boolean> {
    if (!this.abandoned) this.flush();
    await Promise.all(this.pending);
    return !this.abandoned && data !== undefined && data === this.data && this.values === data.length;
  }

  /** Hands the placed run to a write at its place in the file. */
  private flush(): void {
    const { from, to } = this.run;
    const data = this.data;
    this.run = { from: to, to };
    if (to === from || data === undefined) return;
    const bpe = data.BYTES_PER_ELEMENT;
    const bytes = new Uint8Array(data.buffer, data.byteOffset + from * bpe, (to - from) * bpe);
    this.pending.push(writeAll(this.fh, bytes, NII_VOX_OFFSET + from * bpe).catch(() => this.abandon()));
    // Written-back while decoding goes on: the closing fsync then waits for the last stretch only, not
    // for the whole volume (100 ms and more for 150 MiB here). Issued at once, not chained on the reports
    // of the writes before it (those arrive only when the decoding thread returns to its event loop):
    // it flushes what the writes have reached by then. A failure here is the closing fsync's to report.
    this.unsynced += bytes.length;
    if (this.unsynced >= SYNC_EVERY_BYTES) {
      this.unsynced = 0;
      this.pending.push(this.fh.datasync().catch(() => undefined));
    }
  }

  private abandon(): void {
    this.abandoned = true;
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) done += (await fh.write(bytes, done, bytes.length - done, position + done)).bytesWritten;
}

async function encode(v: Volume, kind: OutKind): Promise<Uint8Array | Uint8Array[]> {
  if (kind === 'png') {
    assertNativeAllowed('PNG output'); // sharp writes it
    if ((v.shape[2] ?? 1) !== 1) throw new GatedError('usage', `PNG output needs a 2D input; this one has ${v.shape[2]} slices (write .nii.gz instead)`);
    const { writePng } = await import('../io/image/write.ts');
    return writePng(v, pngWindow(v));
  }
  const { niftiParts } = await import('../io/nifti/write.ts');
  return niftiParts(v, { gzip: kind === 'nii.gz' });
}

/**
 * PNG holds 0-65535. Values that fit are written as they are; otherwise (CT in Hounsfield units, floats)
 * the series' own display window is used, or the value range when there is none.
 */
function pngWindow(v: Volume): { window?: [number, number] } {
  const slope = v.meta.rescale?.slope ?? 1;
  const inter = v.meta.rescale?.intercept ?? 0;
  let lo = Infinity;
  let hi = -Infinity;
  let integral = true;
  for (let i = 0; i < v.data.length; i++) {
    const x = (v.data[i] as number) * slope + inter;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
    if (integral && !Number.isInteger(x)) integral = false;
  }
  if (integral && lo >= 0 && hi <= 65535) return {};
  const w = v.meta.window;
  if (w && w.width > 0) return { window: [w.center - w.width / 2, w.center + w.width / 2] };
  return { window: [lo, hi > lo ? hi : lo + 1] };
}

