/**
 * Enhanced multi-frame: nibabel's Philips MPRAGE (Enhanced MR Image Storage, 176 frames, geometry and
 * rescale in per-frame functional groups) read by readDicomItems and converted by dcm2niix; compared in
 * canonical orientation: real voxel values exactly, affine within 1e-3 mm.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import { readDicomItems } from '../../../io/dicom/read_items.ts';
import { toCanonical } from '../../../io/orient.ts';
import { realValues } from '../../../io/volume.ts';
import { PYTHON } from '../../_helpers/python.ts';
import { NIBABEL_NICOM, requireData } from '../../_helpers/testdata.ts';

const DUMP = `
import json, sys, numpy as np, nibabel as nib
img = nib.as_closest_canonical(nib.load(sys.argv[1]))
arr = np.asarray(img.get_fdata(), dtype='<f4')
open(sys.argv[2], 'wb').write(arr.tobytes(order='F'))
print(json.dumps({'shape': list(arr.shape), 'affine': img.affine.tolist()}))
`;

describe('enhanced multi-frame vs dcm2niix', () => {
  it('Philips MPRAGE (176 frames): same shape, affine and real voxels', async () => {
    const root = mkdtempSync(join(tmpdir(), 'gv-mf-'));
    const bytes = new Uint8Array(gunzipSync(readFileSync(requireData(join(NIBABEL_NICOM, 'philips_mprage.dcm.gz')))));
    mkdirSync(join(root, 'in'));
    writeFileSync(join(root, 'in', 'mprage.dcm'), bytes);
    execFileSync('dcm2niix', ['-z', 'n', '-b', 'n', '-f', 'ref', '-o', root, join(root, 'in')], { encoding: 'utf8' });
    const ref = JSON.parse(execFileSync(PYTHON, ['-c', DUMP, join(root, 'ref.nii'), join(root, 'ref.f32')], { encoding: 'utf8' })) as { shape: number[]; affine: number[][] };
    const buf = readFileSync(join(root, 'ref.f32'));
    const refData = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);

    const res = await readDicomItems([{ name: 'mprage', size: bytes.length, read: async () => bytes }], { limits: resolveLimits() });
    expect(res.rejected).toEqual([]);
    expect(res.warnings).toEqual([]);
    expect(res.volumes).toHaveLength(1);
    const raw = res.volumes[0]!;
    expect(raw.shape).toEqual([256, 256, 176]);
    expect(raw.meta.sopInstanceUIDs).toHaveLength(176);
    const v = toCanonical(raw);
    expect(v.shape).toEqual(ref.shape);
    let am = 0;
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) am = Math.max(am, Math.abs(v.affine[r]![c]! - ref.affine[r]![c]!));
    expect(am).toBeLessThan(1e-3);
    const real = realValues(v);
    let m = 0;
    for (let i = 0; i < refData.length; i++) m = Math.max(m, Math.abs(Math.fround(real[i]!) - refData[i]!));
    expect(real.length).toBe(refData.length);
    expect(m).toBe(0);
    rmSync(root, { recursive: true, force: true });
  });
});
