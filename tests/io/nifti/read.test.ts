/**
 * Every NIfTI file in nibabel's test data and every mricron template, read by us and by nibabel: same stored
 * values, shape, affine, axis codes, slope/intercept; or a typed rejection where nibabel refuses, where the
 * datatype is outside our allowlist, or for a .hdr/.img pair (single files only). Writes the outcome table.
 */
import { readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { listFiles, MRICRON, NIBABEL_DATA } from '../../_helpers/testdata.ts';
import { pythonJson } from '../../_helpers/python.ts';
import { attempt, NIBABEL_DUMP, sha256, type NibabelRef } from './fixtures.ts';

const files = [...listFiles(NIBABEL_DATA, /\.(nii(\.gz)?|hdr)$/), ...listFiles(MRICRON, /\.nii\.gz$/)];
const oracle = pythonJson<Record<string, NibabelRef>>(NIBABEL_DUMP, files, { timeoutMs: 300_000 });
const rows: string[] = [];

describe('readNifti vs nibabel on real files', () => {
  it('finds the corpus (NIfTI-1 and -2, both byte orders, gzip, extensions, pairs)', () => {
    const refs = Object.values(oracle).filter((r) => r.error === undefined);
    expect(files.length).toBeGreaterThanOrEqual(24);
    expect(refs.some((r) => r.version === 2)).toBe(true);
    expect(refs.some((r) => r.endian === '>')).toBe(true);
    expect(refs.some((r) => r.extensions > 0)).toBe(true);
    expect(files.some((f) => f.endsWith('.hdr'))).toBe(true);
  });

  it.each(files)('%s', (file) => {
    const ref = oracle[file]!;
    const bytes = new Uint8Array(readFileSync(file));
    const got = attempt(bytes);
    let outcome: string;
    let detail = '';
    if (got.ok) {
      const v = got.volume;
      expect(ref.error, `nibabel refused ${file} (${ref.error}) but we read it`).toBeUndefined();
      if (ref.error !== undefined) return;
      expect(v.data.byteLength).toBe(ref.nbytes);
      expect(sha256(v)).toBe(ref.sha);
      // shape: nibabel's, with axes past the 4th stacked into the 4th and RGB as a planar 4th axis
      const [x = 1, y = 1, z = 1, ...rest] = ref.shape;
      const t = rest.reduce((a, b) => a * b, 1) * (v.meta.components === 'rgb' ? 3 : 1);
      expect(v.shape).toEqual(t > 1 || v.meta.components === 'rgb' ? [x, y, z, t] : [x, y, z]);
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(v.affine[r]![c]!).toBe(ref.affine[r]![c]!);
      expect(v.meta.orientation).toBe(ref.axcodes);
      expect(v.meta.rescale?.slope ?? 1).toBe(ref.slope);
      expect(v.meta.rescale?.intercept ?? 0).toBe(ref.inter);
      if (ref.shape.length === 4) expect(v.spacing[3]).toBe(Math.abs(ref.zooms[3]!) || 1);
      outcome = `equal (${v.shape.join('x')} ${v.dtype}${v.meta.components === 'rgb' ? ' rgb' : ''})`;
      const inflated = bytes[0] === 0x1f ? gunzipSync(bytes).length : bytes.length;
      detail = [
        `NIfTI-${ref.version}`,
        ref.endian === '>' ? 'big-endian' : 'little-endian',
        `vox_offset ${ref.offset}`,
        ref.extensions ? `${ref.extensions} extension(s)` : '',
        bytes[0] === 0x1f ? `gzip ${(inflated / bytes.length).toFixed(0)}:1` : '',
        ref.slope !== 1 || ref.inter !== 0 ? `scl ${ref.slope}/${ref.inter}` : '',
      ]
        .filter(Boolean)
        .join(', ');
    } else {
      // typed rejection: right where nibabel refuses, for a datatype outside our allowlist, or for a pair
      const allowed = ref.error !== undefined || got.code === 'unsupported_datatype' || (file.endsWith('.hdr') && got.code === 'not_nifti');
      expect(allowed, `${file}: we rejected (${got.code}: ${got.message}) but nibabel read it`).toBe(true);
      outcome = `rejected \`${got.code}\``;
      detail = got.message;
    }
    const nib = ref.error === undefined ? `read (${ref.shape.join('x')} ${ref.dtype})` : `error (${ref.error.split(':')[0]})`;
    rows.push(`| ${basename(file)} | ${(statSync(file).size / 1024).toFixed(0)} KiB | ${nib} | ${outcome} | ${detail} |`);
  });

  it('writes the per-file outcome table', () => {
    expect(rows.length).toBe(files.length);
    const dir = join(import.meta.dirname, '..', '..', 'reports');
    mkdirSync(dir, { recursive: true });
    const text = [
      '# NIfTI corpus: ours vs nibabel',
      '',
      `Written by tests/io/nifti/read.test.ts. Sources: ${NIBABEL_DATA}, ${MRICRON}.`,
      '"equal" = same stored bytes (sha256), shape, affine (exact), axis codes and scl_slope/scl_inter as nibabel',
      '(`dataobj.get_unscaled()`, `img.affine`, `dataobj.slope/inter`). .hdr/.img pairs are refused by design.',
      '',
      '| file | size | nibabel | ours | detail |',
      '|---|---|---|---|---|',
      ...rows,
      '',
    ].join('\n');
    writeFileSync(join(dir, 'nifti_corpus.md'), text);
  });
});
