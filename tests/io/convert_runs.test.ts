/**
 * `convert` to .nii hands adjacent decoded slices to one write (up to 8 MiB). Whatever order the files
 * come in (rising or falling slice position, or one long run split into several writes), the file must
 * be byte for byte what the NIfTI writer makes of the loaded volume (also when the volume's memory is
 * given back before the closing fsync).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInputDirect } from '../../io/load.ts';
import { writeNifti } from '../../io/nifti/write.ts';
import { convertInputDirect } from '../../pipelines/convert.ts';
import { ORACLES_ON_PATH, runPython } from '../_helpers/python.ts';

const root = mkdtempSync(join(tmpdir(), 'gv-convert-runs-'));

// n slices of rows x cols int16, file names in rising ('up') or falling ('down') slice position
const MAKE = `
import os, sys
import numpy as np
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out, order, rows, cols, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(rows + n)
series = generate_uid()
for k in range(n):
    ds = axial_slice(series, 1.0 * k, rng.integers(-30000, 30000, size=(rows, cols)).astype('<i2'), 0.8, modality='MR')
    name = k if order == 'up' else n - 1 - k
    ds.save_as(os.path.join(out, f'{name:03d}.dcm'), write_like_original=False)
`;

const dirs: Record<string, string> = {};
beforeAll(() => {
  for (const [name, order, rows, cols, n] of [
    ['up', 'up', 30, 26, 12],
    ['down', 'down', 30, 26, 12],
    // 40 slices of 512 KiB: 20 MiB, several writes, and a volume large enough to be released early
    ['long', 'up', 512, 512, 40],
  ] as const) {
    dirs[name] = join(root, name);
    runPython(MAKE, [dirs[name]!, order, String(rows), String(cols), String(n)]);
  }
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('convert to .nii with adjacent slices in one write', () => {
  it.each(['up', 'down', 'long'])('%s: the file equals the writer\'s bytes for the loaded volume', async (name) => {
    const out = join(root, 'out', `${name}.nii`);
    await convertInputDirect(dirs[name]!, { kind: 'file', path: out, format: 'nii' }, { sandbox: false });
    const loaded = await loadInputDirect(dirs[name]!, { sandbox: false });
    const want = Buffer.from(writeNifti(loaded.volumes[0]!));
    const file = readFileSync(out);
    expect(file.length).toBe(want.length);
    expect(file.equals(want)).toBe(true);
    // the slices differ from each other, so a slice written at another slice's place would show
    const v = loaded.volumes[0]!;
    const n2 = v.shape[0]! * v.shape[1]!;
    expect(v.data.subarray(0, 16)).not.toEqual(v.data.subarray(n2, n2 + 16));
  });
});
