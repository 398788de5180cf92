/** Every NIfTI file in nibabel's test data and mricron-data, read by us and by nibabel: same data, same affine. */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { readNifti } from '../../../io/nifti/read.ts';
import { listFiles, MRICRON, NIBABEL_DATA } from '../../_helpers/testdata.ts';
import { pythonJson } from '../../_helpers/python.ts';

const ORACLE = `
import json, sys, hashlib, numpy as np, nibabel as nib
out = {}
for f in sys.argv[1:]:
    try:
        try:
            img = nib.Nifti1Image.load(f)
        except Exception:
            img = nib.Nifti2Image.load(f)  # CIFTI-2 files are NIfTI-2 underneath
        raw = np.asanyarray(img.dataobj.get_unscaled())
        if raw.dtype.names:  # RGB24 as a structured array: planar components on a last axis
            raw = np.stack([raw[n] for n in raw.dtype.names], axis=-1)
        b = np.asarray(raw).astype(raw.dtype.newbyteorder('<')).tobytes(order='F')
        slope, inter = img.dataobj.slope, img.dataobj.inter
        out[f] = {'sha': hashlib.sha256(b).hexdigest(), 'nbytes': len(b), 'shape': list(img.shape), 'affine': img.affine.tolist(),
                  'slope': float(slope), 'inter': float(inter), 'dtype': str(raw.dtype)}
    except Exception as e:
        out[f] = {'error': type(e).__name__ + ': ' + str(e)[:120]}
print(json.dumps(out))
`;

const files = [...listFiles(NIBABEL_DATA, /\.nii(\.gz)?$/), ...listFiles(MRICRON, /\.nii\.gz$/)];
type Ref = { sha: string; nbytes: number; shape: number[]; affine: number[][]; slope: number; inter: number; dtype: string; error?: undefined } | { error: string };
const oracle = pythonJson<Record<string, Ref>>(ORACLE, files, { timeoutMs: 300_000 });
const ctx = { limits: resolveLimits() };
const report: string[] = ['| file | nibabel | ours | detail |', '|---|---|---|---|'];

describe('readNifti vs nibabel', () => {
  it.each(files)('%s', (file) => {
    const ref = oracle[file]!;
    let outcome: string;
    try {
      const v = readNifti(new Uint8Array(readFileSync(file)), ctx, file);
      expect(ref.error, `nibabel refused ${file} (${ref.error}) but we read it`).toBeUndefined();
      if (ref.error !== undefined) return;
      const bytes = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
      expect(bytes.length).toBe(ref.nbytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(ref.sha);
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(Math.abs(v.affine[r]![c]! - ref.affine[r]![c]!)).toBeLessThan(1e-5);
      const slope = v.meta.rescale?.slope ?? 1;
      const inter = v.meta.rescale?.intercept ?? 0;
      expect(slope).toBeCloseTo(Number.isNaN(ref.slope) ? 1 : ref.slope, 6);
      expect(inter).toBeCloseTo(Number.isNaN(ref.inter) ? 0 : ref.inter, 4);
      expect(v.shape.reduce((a, b) => a * b, 1)).toBe(ref.shape.reduce((a, b) => a * b, 1) * (v.meta.components === 'rgb' ? 3 : 1));
      outcome = `equal (${v.shape.join('x')} ${v.dtype}${v.meta.components === 'rgb' ? ' rgb' : ''})`;
    } catch (e) {
      if (!(e instanceof GatedError)) throw e;
      // a typed rejection is right only where nibabel refuses too, or for a datatype outside our allowlist
      expect(ref.error !== undefined || e.code === 'unsupported_datatype', `${file}: we rejected (${e.code}: ${e.message}) but nibabel read it`).toBe(true);
      outcome = `rejected ${e.code}`;
    }
    report.push(`| ${file.split('/').slice(-2).join('/')} | ${ref.error ? `error (${ref.error.split(':')[0]})` : 'read'} | ${outcome} | |`);
  });

  it('writes the per-file outcome table', () => {
    mkdirSync(join(import.meta.dirname, '..', '..', 'reports'), { recursive: true });
    writeFileSync(join(import.meta.dirname, '..', '..', 'reports', 'nifti_corpus.md'), `# NIfTI corpus: ours vs nibabel\n\n${report.join('\n')}\n`);
    expect(report.length).toBe(files.length + 2);
  });
});
