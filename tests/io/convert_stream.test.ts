/**
 * `convert` to .nii writes a DICOM series' slices while later ones are decoded. The file must be byte for
 * byte what the NIfTI writer makes of the loaded volume in every case: slices written as decoded; values
 * changed after they were written (a CT intercept added in place); a second decode attempt after a slice
 * failed (fewer slices: the file must also end where the new volume ends); and nothing is left behind
 * when the conversion fails.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { loadInputDirect } from '../../io/load.ts';
import { writeNifti } from '../../io/nifti/write.ts';
import { convertInputDirect } from '../../pipelines/convert.ts';
import { ORACLES_ON_PATH, runPython } from '../_helpers/python.ts';

const root = mkdtempSync(join(tmpdir(), 'gv-convert-stream-'));

// n slices of 24x20 int16 CT, positions 2 mm apart, written in shuffled file order
const MAKE = `
import os, sys
import numpy as np
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out, intercept, series_n, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), 8
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(int(abs(intercept)) + series_n)
for s in range(series_n):
    series = generate_uid()
    for k, name in enumerate([5, 0, 7, 2, 4, 1, 6, 3]):
        ds = axial_slice(series, 2.0 * k, rng.integers(-2048, 2048, size=(20, 24)).astype('<i2'), 0.5, bits_stored=12, intercept=intercept)
        ds.save_as(os.path.join(out, f's{s}-{name:02d}.dcm'), write_like_original=False)
`;

function make(name: string, intercept: number, series = 1): string {
  const dir = join(root, name);
  runPython(MAKE, [dir, String(intercept), String(series)]);
  return dir;
}

let dirs: Record<string, string>;
beforeAll(() => {
  dirs = { plain: make('plain', 0), ct: make('ct', -1024), two: make('two', 0, 2), broken: make('broken', 0) };
  // one slice of `broken` as JPEG-LS with its codestream damaged: its header reads, its pixels do not
  const b = dirs.broken!;
  const victim = join(b, 's0-02.dcm'); // a middle slice: the first attempt wrote slices past the second one's end
  execFileSync('dcmcjpls', [victim, `${victim}.ls`]);
  const bytes = readFileSync(`${victim}.ls`);
  const sos = bytes.lastIndexOf(Buffer.from([0xff, 0xda]));
  bytes.fill(0xff, sos + 16, bytes.length - 16);
  writeFileSync(victim, bytes);
  rmSync(`${victim}.ls`);
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function expected(dir: string): Promise<Buffer> {
  const res = await loadInputDirect(dir, { sandbox: false });
  return Buffer.from(writeNifti(res.volumes[0]!));
}

async function convert(dir: string, name: string): Promise<{ file: Buffer; rejected: number }> {
  const out = join(root, 'out', `${name}.nii`);
  const res = await convertInputDirect(dir, { kind: 'file', path: out, format: 'nii' }, { sandbox: false });
  expect(res.outputs).toEqual([out]);
  return { file: readFileSync(out), rejected: res.rejected.length };
}

describe('convert to .nii while decoding', () => {
  it('slices written as decoded: the file equals the writer\'s bytes for the loaded volume', async () => {
    const { file } = await convert(dirs.plain!, 'plain');
    expect(file.equals(await expected(dirs.plain!))).toBe(true);
    expect(file.length).toBe(352 + 24 * 20 * 8 * 2);
  });

  it('intercept -1024 added after the slices were written: the file holds the rescaled values', async () => {
    const want = await expected(dirs.ct!);
    const { file } = await convert(dirs.ct!, 'ct');
    expect(file.equals(want)).toBe(true);
    // the values really moved (stored values alone would be another file)
    const res = await loadInputDirect(dirs.ct!, { sandbox: false });
    expect(res.volumes[0]!.meta.rescale).toBeUndefined();
    expect(Math.min(...Array.from(res.volumes[0]!.data))).toBeLessThan(-2048);
  });

  it('a slice that fails to decode: the second attempt\'s volume, and the file ends where it ends', async () => {
    const { file, rejected } = await convert(dirs.broken!, 'broken');
    expect(rejected).toBe(1);
    const want = await expected(dirs.broken!);
    expect(file.length).toBe(want.length);
    expect(file.equals(want)).toBe(true);
  });

  it('two series into one file is refused and leaves no file behind', async () => {
    const out = join(root, 'out2', 'two.nii');
    const e = await convertInputDirect(dirs.two!, { kind: 'file', path: out, format: 'nii' }, { sandbox: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(GatedError);
    expect((e as GatedError).code).toBe('usage');
    expect(readdirSync(join(root, 'out2'))).toEqual([]);
  });
});
