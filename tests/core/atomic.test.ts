/** Atomic writes: the target holds either its old content or the complete new one, and no temporary is left. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { commitTempSibling, openTempSibling, writeFileAtomic } from '../../core/atomic.ts';
import { GatedError } from '../../core/errors.ts';

const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), 'gv-atomic-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

it('replaces a file with parts written in order, creating the folder, leaving no temporary', async () => {
  const dir = fresh();
  const path = join(dir, 'sub', 'out.bin');
  await writeFileAtomic(path, 'old');
  await writeFileAtomic(path, [new Uint8Array([1, 2]), new Uint8Array([]), new Uint8Array([3])]);
  expect(Array.from(readFileSync(path))).toEqual([1, 2, 3]);
  expect(readdirSync(join(dir, 'sub'))).toEqual(['out.bin']);
});

it('a failed write is a typed io_error and leaves the old file and no temporary', async () => {
  const dir = fresh();
  writeFileSync(join(dir, 'file'), 'x');
  // a folder path through a regular file cannot be created
  const bad = writeFileAtomic(join(dir, 'file', 'out.bin'), 'new');
  await expect(bad).rejects.toBeInstanceOf(GatedError);
  await expect(bad).rejects.toMatchObject({ code: 'io_error' });
  expect(readdirSync(dir)).toEqual(['file']);
});

it('a temporary sibling is invisible under the target name until committed', async () => {
  const dir = fresh();
  const path = join(dir, 'vol.nii');
  writeFileSync(path, 'previous');
  const { fh, tmp } = await openTempSibling(path);
  await fh.write(new Uint8Array([7, 8, 9]), 0, 3, 0);
  expect(readFileSync(path, 'utf8')).toBe('previous');
  expect(readdirSync(dir).length).toBe(2);
  await fh.sync();
  await fh.close();
  await commitTempSibling(tmp, path);
  expect(Array.from(readFileSync(path))).toEqual([7, 8, 9]);
  expect(readdirSync(dir)).toEqual(['vol.nii']);
});
