/** Paths of the Debian test corpora (installed by .ci/run from .ci/apt-packages.txt). */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
export const NIBABEL_DATA = '/usr/lib/python3/dist-packages/nibabel/tests/data';
export const NIBABEL_NICOM = '/usr/lib/python3/dist-packages/nibabel/nicom/tests/data';
export const MRICRON = '/usr/share/mricron/templates';
export const SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data';

/** Fails loudly (never skips) when a corpus is missing, naming the package that provides it. */
export function requireData(path: string): string {
  if (!existsSync(path)) throw new Error(`test data missing: ${path} (install the packages in .ci/apt-packages.txt)`);
  return path;
}

export function listFiles(dir: string, pattern: RegExp): string[] {
  requireData(dir);
  return readdirSync(dir)
    .filter((f) => pattern.test(f))
    .sort()
    .map((f) => join(dir, f));
}
