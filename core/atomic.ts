/**
 * Writes that never leave a partial file behind: write to a temporary sibling, fsync, rename, fsync the
 * folder. A kill at any moment leaves either the old file or the complete new one.
 */
import { open, rename, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { toGatedError } from './errors.ts';

export async function writeFileAtomic(path: string, data: Uint8Array | string | Uint8Array[]): Promise<void> {
  await writeAtomicWith(path, async (fh) => {
    if (Array.isArray(data)) for (const part of data) await writeAll(fh, part);
    else await fh.writeFile(data);
  });
}

/** Atomic write of a file that `fill` writes in as many steps as it likes (streamed output). */
export async function writeAtomicWith(path: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
  const { fh, tmp } = await openTempSibling(path);
  try {
    try {
      await fill(fh);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await commitTempSibling(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw toGatedError(e, 'io_error', `cannot write ${path}`);
  }
}

/** All of `b`, however many short writes it takes. */
export async function writeAll(fh: FileHandle, b: Uint8Array): Promise<void> {
  for (let done = 0; done < b.length; ) done += (await fh.write(b, done, b.length - done)).bytesWritten;
}

/** Creates the folder of `path` and opens a new temporary sibling of it for writing (for writers that fill a file in
 *  several steps; finish with fsync, close and commitTempSibling, or unlink the temporary on failure). */
export async function openTempSibling(path: string): Promise<{ fh: FileHandle; tmp: string }> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true }).catch((e: unknown) => {
    throw toGatedError(e, 'io_error', `cannot create ${dir}`);
  });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o644).catch((e: unknown) => {
    throw toGatedError(e, 'io_error', `cannot write ${path}`);
  });
  return { fh, tmp };
}

/** Renames a finished, fsynced temporary over `path`, then fsyncs the folder so that the rename survives a crash. */
export async function commitTempSibling(tmp: string, path: string): Promise<void> {
  await rename(tmp, path);
  const dh = await open(dirname(path), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
