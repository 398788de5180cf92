/** Hostile and broken NIfTI (reliability classes N1–N8): typed codes, no hang, bounded memory. */
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { readNifti } from '../../../io/nifti/read.ts';
import { NIBABEL_DATA } from '../../_helpers/testdata.ts';

const ctx = { limits: resolveLimits() };
const base = new Uint8Array(readFileSync(`${NIBABEL_DATA}/standard.nii.gz`));
const plain = readNifti(base, ctx, 'standard'); // 4x5x7 uint8
const good = (() => {
  const gz = readFileSync(`${NIBABEL_DATA}/standard.nii.gz`);
  return new Uint8Array(gunzipSync(gz));
})();

function codeOf(bytes: Uint8Array): string {
  const t0 = Date.now();
  try {
    readNifti(bytes, ctx, 'case');
    return 'ok';
  } catch (e) {
    if (!(e instanceof GatedError)) throw e;
    return e.code;
  } finally {
    expect(Date.now() - t0).toBeLessThan(5000);
  }
}

function edit(fn: (dv: DataView, b: Uint8Array) => void, src = good): Uint8Array {
  const b = new Uint8Array(src);
  fn(new DataView(b.buffer), b);
  return b;
}

describe('NIfTI bad input', () => {
  it('reads the untouched file (control)', () => {
    expect(codeOf(good)).toBe('ok');
    expect(plain.shape).toEqual([4, 5, 7]);
  });
  it('N1: not NIfTI, wrong sizeof_hdr or magic', () => {
    expect(codeOf(new Uint8Array(0))).toBe('not_nifti');
    expect(codeOf(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10]))).toBe('not_nifti');
    expect(codeOf(edit((dv) => dv.setInt32(0, 349, true)))).toBe('not_nifti');
    expect(codeOf(edit((_, b) => b.set([0x78, 0x78, 0x78, 0], 344)))).toBe('not_nifti');
  });
  it('N2: extension cycle (esize -16 / +16) and esize < 16 are bad_extension, quickly', () => {
    const withExt = new Uint8Array(good.length + 32);
    withExt.set(good.subarray(0, 352));
    withExt.set(good.subarray(352), 352 + 32);
    const dv = new DataView(withExt.buffer);
    dv.setFloat32(108, 352 + 32, true);
    withExt[348] = 1;
    dv.setInt32(352, -16, true);
    expect(codeOf(withExt)).toBe('bad_extension');
    dv.setInt32(352, 8, true);
    expect(codeOf(withExt)).toBe('bad_extension');
    dv.setInt32(352, 48, true); // past vox_offset
    expect(codeOf(withExt)).toBe('bad_extension');
    dv.setInt32(352, 32, true);
    dv.setInt32(356, 4, true);
    expect(codeOf(withExt)).toBe('ok');
  });
  it('N3: extension flag set with vox_offset 352 is ignored', () => {
    expect(codeOf(edit((_, b) => (b[348] = 1)))).toBe('ok');
  });
  it('N4: vox_offset negative, NaN, inside the header, past the end', () => {
    for (const v of [-100, Number.NaN, 100, 1e9, 352.5]) expect(codeOf(edit((dv) => dv.setFloat32(108, v, true))), String(v)).toBe('bad_vox_offset');
  });
  it('N5: truncated voxel data', () => {
    expect(codeOf(good.subarray(0, good.length - 1))).toBe('truncated');
    expect(codeOf(good.subarray(0, 200))).toBe('truncated');
  });
  it('N6: dims, bitpix, datatypes', () => {
    expect(codeOf(edit((dv) => dv.setInt16(40, 0, true)))).toBe('bad_dims');
    expect(codeOf(edit((dv) => dv.setInt16(40, 8, true)))).toBe('bad_dims');
    expect(codeOf(edit((dv) => dv.setInt16(42, -4, true)))).toBe('bad_dims');
    expect(codeOf(edit((dv) => dv.setInt16(72, 16, true)))).toBe('bad_dims');
    expect(codeOf(edit((dv) => (dv.setInt16(70, 32, true), dv.setInt16(72, 64, true))))).toBe('unsupported_datatype');
    expect(codeOf(edit((dv) => (dv.setInt16(70, 1024, true), dv.setInt16(72, 64, true))))).toBe('unsupported_datatype');
    expect(codeOf(edit((dv) => dv.setInt16(70, 3, true)))).toBe('unsupported_datatype');
    // 32767^3 voxels: refused from the header, before any allocation
    expect(codeOf(edit((dv) => [42, 44, 46].forEach((o) => dv.setInt16(o, 32767, true))))).toBe('too_large');
  });
  it('N6: scl_slope 0 or NaN means no scaling (nibabel)', () => {
    for (const s of [0, Number.NaN]) {
      const v = readNifti(edit((dv) => (dv.setFloat32(112, s, true), dv.setFloat32(116, 7, true))), ctx, 's');
      expect(v.meta.rescale).toBeUndefined();
    }
    const v = readNifti(edit((dv) => (dv.setFloat32(112, 2, true), dv.setFloat32(116, 7, true))), ctx, 's');
    expect(v.meta.rescale).toEqual({ slope: 2, intercept: 7 });
  });
  it('N7: gzip bomb stops at the header-derived cap with bounded memory; forged ISIZE is never trusted', () => {
    const bomb = gzipSync(Buffer.concat([Buffer.from(good), Buffer.alloc(200 * 1024 * 1024)]), { level: 9 });
    expect(bomb.length).toBeLessThan(400_000);
    const before = process.memoryUsage().arrayBuffers;
    expect(codeOf(new Uint8Array(bomb))).toBe('decompressed_too_large');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    const forged = new Uint8Array(gzipSync(good));
    new DataView(forged.buffer).setUint32(forged.length - 4, 512 * 1024 * 1024, true);
    const b2 = process.memoryUsage().arrayBuffers;
    expect(['ok', 'truncated']).toContain(codeOf(forged));
    expect(process.memoryUsage().arrayBuffers - b2).toBeLessThan(16 * 1024 * 1024);
  });
  it('N8: .hdr/.img pair headers are refused; multi-member gzip is read whole', () => {
    expect(codeOf(new Uint8Array(readFileSync(`${NIBABEL_DATA}/nifti1.hdr`)))).toBe('not_nifti');
    const two = Buffer.concat([gzipSync(good.subarray(0, 1000)), gzipSync(good.subarray(1000))]);
    const v = readNifti(new Uint8Array(two), ctx, 'multi');
    expect(Buffer.compare(Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength), Buffer.from(plain.data.buffer, plain.data.byteOffset, plain.data.byteLength))).toBe(0);
  });
});
