/**
 * `gatedvision convert` as a user runs it: bin/gatedvision.mjs, which runs the build (dist/, whose
 * decoding threads start from CommonJS bundles) when it is fresh, as after `npm ci` or `npm run build`,
 * and the sources otherwise. Either way the files must be the bytes the in-process conversion writes,
 * for a native series, a JPEG-LS series decoded on several threads, and a .nii.gz.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertInputDirect } from '../../pipelines/convert.ts';
import { ORACLES_ON_PATH, runPython } from '../_helpers/python.ts';

const root = mkdtempSync(join(tmpdir(), 'gv-convert-cli-'));
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'gatedvision.mjs');

// 12 slices of 64x48 int16 MR, and the same volume as .nii.gz
const MAKE = `
import os, sys
import numpy as np, nibabel as nib
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out = sys.argv[1]
rng = np.random.default_rng(11)
vol = rng.integers(-2000, 6000, size=(12, 48, 64)).astype('<i2')
os.makedirs(os.path.join(out, 'plain'))
series = generate_uid()
for k in range(12):
    ds = axial_slice(series, 2.0 * k, vol[k], 0.9, modality='MR', sop_class='1.2.840.10008.5.1.4.1.1.4')
    ds.save_as(os.path.join(out, 'plain', f'{k:02d}.dcm'), write_like_original=False)
nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), np.diag([0.9, 0.9, 2.0, 1.0])), os.path.join(out, 'vol.nii.gz'))
`;

const inputs: Record<string, string> = {};
beforeAll(() => {
  runPython(MAKE, [root]);
  mkdirSync(join(root, 'jpegls'));
  for (const f of readdirSync(join(root, 'plain'))) execFileSync('dcmcjpls', [join(root, 'plain', f), join(root, 'jpegls', f)]);
  Object.assign(inputs, { plain: join(root, 'plain'), 'jpeg-ls': join(root, 'jpegls'), 'nii.gz': join(root, 'vol.nii.gz') });
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('convert through bin/gatedvision.mjs', () => {
  it.each(['plain', 'jpeg-ls', 'nii.gz'])('%s: the bytes of the in-process conversion', async (name) => {
    const out = join(root, `${name}.cli.nii`);
    const stdout = execFileSync(process.execPath, [BIN, 'convert', inputs[name]!, out, '--json'], { encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(stdout).outputs).toEqual([out]);
    const want = join(root, `${name}.direct.nii`);
    await convertInputDirect(inputs[name]!, { kind: 'file', path: want, format: 'nii' }, { sandbox: false });
    expect(readFileSync(out).equals(readFileSync(want))).toBe(true);
    expect(readFileSync(out).length).toBe(352 + 64 * 48 * 12 * 2);
  });
});
