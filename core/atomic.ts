/**
 * Writes that never leave a partial file behind: write to a temporary sibling, fsync, rename, fsync the
 * folder. A kill at any moment leaves either the old file or the complete new one.
 */
import { open, rename, unlink, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { toGatedError } from './errors.ts';

export async function writeFileAtomic(path: string, data: Uint8Array | string | Uint8Array[]): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true }).catch((e: unknown) => {
    throw toGatedError(e, 'io_error', `cannot create ${dir}`);
  });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      if (Array.isArray(data)) {
        for (const part of data) {
          for (let done = 0; done < part.length; ) done += (await fh.write(part, done, part.length - done)).bytesWritten;
        }
      } else await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw toGatedError(e, 'io_error', `cannot write ${path}`);
  }
}
