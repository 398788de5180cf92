/**
 * `convert` decoding in a worker thread writes the same bytes as decoding in a child process, for each
 * input kind the worker takes (DICOM native and JPEG-LS, .nii.gz, a zip of a series), and an image input,
 * which needs sharp, is converted by a child process all the same.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import type { SandboxMode } from '../../io/sandbox.ts';
import { convertInput } from '../../pipelines/convert.ts';
import { ORACLES_ON_PATH, runPython } from '../_helpers/python.ts';

const root = mkdtempSync(join(tmpdir(), 'gv-convert-worker-'));

// 12 slices of 40x32 int16 CT with intercept -1024, and the same volume as .nii.gz, a zip and a PNG
const MAKE = `
import os, sys, zipfile
import numpy as np, nibabel as nib
from PIL import Image
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out = sys.argv[1]
rng = np.random.default_rng(7)
vol = rng.integers(-1000, 3000, size=(12, 32, 40)).astype('<i2')
os.makedirs(os.path.join(out, 'plain'))
series = generate_uid()
for k in range(12):
    ds = axial_slice(series, 1.5 * k, vol[k], 0.7, intercept=-1024)
    ds.save_as(os.path.join(out, 'plain', f'{(k * 5) % 12:03d}.dcm'), write_like_original=False)
with zipfile.ZipFile(os.path.join(out, 'series.zip'), 'w') as z:
    for f in sorted(os.listdir(os.path.join(out, 'plain'))):
        z.write(os.path.join(out, 'plain', f), f)
nib.save(nib.Nifti1Image(np.transpose(vol, (2, 1, 0)), np.diag([0.7, 0.7, 1.5, 1.0])), os.path.join(out, 'volume.nii.gz'))
Image.fromarray((vol[3] & 0xff).astype(np.uint8)).save(os.path.join(out, 'slice.png'))
`;

beforeAll(() => {
  runPython(MAKE, [root]);
  mkdirSync(join(root, 'jpegls'));
  for (const f of readdirSync(join(root, 'plain'))) execFileSync('dcmcjpls', [join(root, 'plain', f), join(root, 'jpegls', f)]);
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function convert(input: string, mode: SandboxMode, out: string): Promise<Buffer> {
  const path = join(root, 'out', mode, out);
  const res = await convertInput(join(root, input), { kind: 'file', path, format: out.endsWith('.gz') ? 'nii.gz' : 'nii' }, { sandboxMode: mode });
  expect(res.outputs).toEqual([path]);
  return readFileSync(path);
}

describe('convert in a worker thread', () => {
  it.each([
    ['plain', 'plain.nii'],
    ['jpegls', 'jpegls.nii'],
    ['volume.nii.gz', 'nifti.nii'],
    ['series.zip', 'zip.nii.gz'],
    ['slice.png', 'png.nii'],
  ])('%s → %s: the same bytes as in a child process', async (input, out) => {
    const worker = await convert(input, 'worker', out);
    const child = await convert(input, 'process', out);
    expect(worker.length).toBeGreaterThan(352);
    expect(worker.equals(child)).toBe(true);
  });

  it('the DICOM inputs hold the same volume (the comparison above compares something)', async () => {
    const [plain, ls] = [await convert('plain', 'worker', 'a.nii'), await convert('jpegls', 'worker', 'b.nii')];
    expect(plain.length).toBe(352 + 40 * 32 * 12 * 2);
    expect(ls.equals(plain)).toBe(true);
  });

  it('a bad input is the same typed error in both modes, and the next conversion runs', async () => {
    const codes: string[] = [];
    // a JPEG-LS slice cut short inside its pixel data
    writeFileSync(join(root, 'cut.dcm'), readFileSync(join(root, 'jpegls', '005.dcm')).subarray(0, 1500));
    for (const mode of ['worker', 'process'] as const) {
      const e = await convertInput(join(root, 'cut.dcm'), { kind: 'file', path: join(root, 'out', 'x.nii'), format: 'nii' }, { sandboxMode: mode }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(GatedError);
      codes.push((e as GatedError).code);
    }
    expect(codes[0]).toBe(codes[1]);
    expect(codes[0]).not.toBe('internal');
    expect((await convert('plain', 'worker', 'again.nii')).length).toBe(352 + 40 * 32 * 12 * 2);
  });
});
