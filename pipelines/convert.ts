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
import type { LoadResult, SliceSink, SliceStreamSink } from '../io/types.ts';
import { DTYPE_BYTES, type Volume, type VoxelArray } from '../io/volume.ts';

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
 * overlaps decoding. Most series never exist in memory at all: their slices pass through a few MiB of
 * reused buffers (SliceSink.stream). For the others, whatever the streamed bytes cannot be trusted for
 * (values changed after a slice was written, a second decode attempt, NIfTI-2, another layout), the whole
 * body is written again at the end from the volume.
 */
async function convertToNii(input: string, path: string, opts: LoadOptions): Promise<ConvertResult> {
  const [{ loadInputDirect }, { niftiParts, niftiHeader }] = await Promise.all([import('../io/load.ts'), import('../io/nifti/write.ts')]);
  const { fh, tmp } = await openTempSibling(path);
  const sink = new SliceStream(fh);
  let closed = false;
  const finish = async (size: number) => {
    // an abandoned first attempt may have written past the end of the final volume
    await fh.truncate(size);
    await fh.sync();
    await fh.close();
    closed = true;
    await commitTempSibling(tmp, path);
  };
  try {
    const res = await loadInputDirect(input, { ...opts, sandbox: false, slices: sink });
    if (res.volumes.length > 1) {
      throw new GatedError('usage', `the input holds ${res.volumes.length} series; give a folder as output to write one file per series`);
    }
    const v = res.volumes[0]!;
    if (v.data.length === 0 && sink.stream.streamed) {
      // the volume was never held: its slices are in the file already
      const { header, values } = niftiHeader(v, { gzip: false });
      if (header.length !== NII_VOX_OFFSET) throw new GatedError('internal', 'a streamed series needs a NIfTI-1 header');
      const bytes = values * DTYPE_BYTES[v.dtype];
      await sink.stream.complete(bytes);
      await writeAll(fh, header, 0);
      res.volumes.length = 0;
      await finish(header.length + bytes);
      return { outputs: [path], warnings: res.warnings, rejected: res.rejected };
    }
    const [header, ...rest] = niftiParts(v, { gzip: false });
    const body = rest[0]!;
    const streamed = (await sink.settle(v.data)) && rest.length === 1 && header!.length === NII_VOX_OFFSET && body.buffer === v.data.buffer && body.byteOffset === v.data.byteOffset;
    if (!streamed) await writeAll(fh, body, header!.length);
    await writeAll(fh, header!, 0);
    const size = header!.length + body.length;
    // every byte is in the file now: the volume's memory goes back while the fsync below waits
    res.volumes.length = 0;
    releaseNow(body.buffer);
    releaseNow(v.data.buffer);
    await finish(size);
    return { outputs: [path], warnings: res.warnings, rejected: res.rejected };
  } catch (e) {
    await sink.settle(undefined).catch(() => undefined);
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
  readonly stream = new SlotRing(this);
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
    // after slices went through the ring, its writes and these would race: the body is written again at the end
    if (this.stream.used) return this.abandon();
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
    this.stream.send();
    await this.drain();
    return !this.abandoned && data !== undefined && data === this.data && this.values === data.length;
  }

  /** Waits for every write issued so far (and any issued while waiting). */
  async drain(): Promise<void> {
    while (this.pending.length > 0) await Promise.all(this.pending.splice(0));
  }

  /**
   * A write at its place in the file, then the periodic flush. Written-back while decoding goes on: the
   * closing fsync then waits for the last stretch only, not for the whole volume (100 ms and more for
   * 150 MiB here). Issued at once, not chained on the reports of the writes before it (those arrive only
   * when the decoding thread returns to its event loop): it flushes what the writes have reached by then.
   * A failure of the flush is the closing fsync's to report.
   */
  issue(write: Promise<void>, bytes: number): void {
    this.pending.push(write);
    this.unsynced += bytes;
    if (this.unsynced >= SYNC_EVERY_BYTES) {
      this.unsynced = 0;
      this.pending.push(this.fh.datasync().catch(() => undefined));
    }
  }

  /** Writes buffers one after the other from `position`. */
  writeAt(bufs: Uint8Array[], position: number): Promise<void> {
    return writevAll(this.fh, bufs, position);
  }

  /** Hands the placed run to a write at its place in the file. */
  private flush(): void {
    const { from, to } = this.run;
    const data = this.data;
    this.run = { from: to, to };
    if (to === from || data === undefined) return;
    const bpe = data.BYTES_PER_ELEMENT;
    const bytes = new Uint8Array(data.buffer, data.byteOffset + from * bpe, (to - from) * bpe);
    this.issue(
      writeAll(this.fh, bytes, NII_VOX_OFFSET + from * bpe).catch(() => this.abandon()),
      bytes.length,
    );
  }

  private abandon(): void {
    this.abandoned = true;
  }
}

/** The memory of the ring: 32 slices of 512x512 int16 (tests shrink it to make the decoding wait for writes). */
export const ringTuning = { bytes: 16 * 1024 * 1024 };

/**
 * Slices of a series that is never held whole: each is decoded into one of a few reused buffers, written at
 * its place in the file (adjacent slices in one write) and its buffer lent again once the write is done.
 * Reused memory is what makes it fast: the pages of a fresh 150 MiB volume cost a fault each on first touch.
 */
class SlotRing implements SliceStreamSink {
  /** Some attempt went through the ring. */
  used = false;
  /** The last attempt went through the ring. */
  streamed = false;
  private size = 0;
  private made = 0;
  private seen = new Uint8Array(0);
  private count = 0;
  private failure: unknown;
  private mine = new WeakSet<Uint8Array>();
  private readonly free: Uint8Array[] = [];
  private readonly waiting: ((b: Uint8Array) => void)[] = [];
  private batch = { from: 0, to: 0, bufs: [] as Uint8Array[] };

  constructor(private readonly out: SliceStream) {}

  async begin(sliceBytes: number, dims: readonly number[]): Promise<boolean> {
    this.send();
    await this.out.drain();
    this.free.length = 0;
    this.made = 0;
    this.mine = new WeakSet();
    this.failure = undefined;
    // NIfTI-1 holds dimensions up to 32767; a larger series is written from its volume
    this.streamed = dims.every((d) => d <= 32767);
    if (!this.streamed) return false;
    this.used = true;
    this.size = sliceBytes;
    const slices = dims.slice(2).reduce((a, b) => a * b, 1);
    this.seen = new Uint8Array(slices);
    this.count = 0;
    return true;
  }

  async slot(): Promise<Uint8Array> {
    const b = this.free.pop();
    if (b) return b;
    if (this.made < Math.max(2, Math.floor(ringTuning.bytes / this.size))) {
      this.made++;
      const fresh = new Uint8Array(this.size);
      this.mine.add(fresh);
      return fresh;
    }
    // every buffer is lent or written: the batch goes now, so that its buffers come back
    this.send();
    return new Promise((res) => this.waiting.push(res));
  }

  kept(slot: Uint8Array, k: number): void {
    if (!this.mine.has(slot) || k < 0 || k >= this.seen.length) throw new GatedError('internal', `slice ${k} came back in a buffer the ring did not lend`);
    if (this.seen[k] === 0) this.count++;
    this.seen[k] = 1;
    const b = this.batch;
    if (b.bufs.length > 0 && k === b.to) {
      b.bufs.push(slot);
      b.to++;
    } else if (b.bufs.length > 0 && k + 1 === b.from) {
      // a series stored in falling slice order
      b.bufs.unshift(slot);
      b.from--;
    } else {
      this.send();
      this.batch = { from: k, to: k + 1, bufs: [slot] };
    }
    // (a write takes at most 512 buffers: tiny slices would otherwise make one of thousands)
    if (this.waiting.length > 0 || this.batch.bufs.length * this.size >= WRITE_BYTES || this.batch.bufs.length >= 512) this.send();
  }

  drop(slot: Uint8Array): void {
    this.giveBack(slot);
  }

  /** Hands the batch of adjacent slices to one write. */
  send(): void {
    const { from, bufs } = this.batch;
    this.batch = { from: 0, to: 0, bufs: [] };
    if (bufs.length === 0) return;
    const back = () => bufs.forEach((b) => this.giveBack(b));
    const write = this.out.writeAt(bufs, NII_VOX_OFFSET + from * this.size).then(back, (e: unknown) => {
      this.failure ??= e;
      back();
    });
    this.out.issue(write, bufs.length * this.size);
  }

  /** Waits for the last attempt's writes; throws unless all of its slices, `bytes` in all, are in the file. */
  async complete(bytes: number): Promise<void> {
    this.send();
    await this.out.drain();
    if (this.failure !== undefined) throw toGatedError(this.failure, 'io_error', 'cannot write the output');
    if (this.count !== this.seen.length || this.seen.length * this.size !== bytes) {
      throw new GatedError('internal', `${this.count} of ${this.seen.length} slices of the series reached the file`);
    }
  }

  private giveBack(b: Uint8Array): void {
    // a buffer of an earlier attempt is not lent again
    if (!this.mine.has(b)) return;
    const w = this.waiting.shift();
    if (w) w(b);
    else this.free.push(b);
  }
}

/** writev until every byte is written (a short write goes on from where it stopped). */
async function writevAll(fh: FileHandle, bufs: Uint8Array[], position: number): Promise<void> {
  let written = (await fh.writev(bufs, position)).bytesWritten;
  let at = position;
  for (const b of bufs) {
    if (written < b.length) await writeAll(fh, b.subarray(written), at + written);
    written = Math.max(0, written - b.length);
    at += b.length;
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

