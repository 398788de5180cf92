/**
 * Hostile and broken NIfTI (reliability.md §4 N1–N8, §1.1 extension cycle, §6.3 bombs): each case gives a
 * typed code, quickly, gzipped or not, with bounded memory where inflation is involved.
 */
import { readFileSync, statSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MiB } from '../../../core/limits.ts';
import { MRICRON, NIBABEL_DATA, requireData } from '../../_helpers/testdata.ts';
import { attempt, codeOf, edit, insert, sha256, standardNii } from './fixtures.ts';

const good = standardNii(); // 492 bytes: 352 header + 140 uint8 voxels
const goodVolume = (() => {
  const o = attempt(good);
  if (!o.ok) throw new Error(`control file unreadable: ${o.code}`);
  return o.volume;
})();
const nifti2 = new Uint8Array(gunzipSync(readFileSync(requireData(`${NIBABEL_DATA}/example_nifti2.nii.gz`))));
const gz = (b: Uint8Array) => new Uint8Array(gzipSync(b));

/** Asserts the code for the bytes as given and gzipped, each within `ms`. */
function expectCode(bytes: Uint8Array, code: string, label = '', ms = 1000): void {
  for (const [how, b] of [
    ['raw', bytes],
    ['gzip', gz(bytes)],
  ] as const) {
    const o = attempt(b);
    expect(o.ok ? 'ok' : o.code, `${label} (${how})${o.ok ? '' : `: ${o.message}`}`).toBe(code);
    expect(o.ms).toBeLessThan(ms);
  }
}

/** Change in external memory (typed arrays) and RSS across fn, in bytes. */
function memoryDelta(fn: () => void): { arrayBuffers: number; rss: number } {
  const a = process.memoryUsage();
  fn();
  const b = process.memoryUsage();
  return { arrayBuffers: b.arrayBuffers - a.arrayBuffers, rss: b.rss - a.rss };
}

describe('NIfTI bad input', () => {
  it('control: the untouched file reads, raw and gzipped', () => {
    expectCode(good, 'ok');
    expect(goodVolume.shape).toEqual([4, 5, 7]);
  });

  it('N1: not NIfTI (empty, PNG, short, wrong sizeof_hdr, wrong magic, magic of the other version)', () => {
    expectCode(new Uint8Array(0), 'not_nifti', 'empty');
    expectCode(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10]), 'not_nifti', 'png');
    expectCode(edit(good, (dv) => dv.setInt32(0, 349, true)), 'not_nifti', 'sizeof_hdr 349');
    expectCode(edit(good, (_, b) => b.set([0x78, 0x78, 0x78, 0], 344)), 'not_nifti', 'magic xxx');
    expectCode(edit(good, (_, b) => b.set([0x6e, 0x2b, 0x32, 0], 344)), 'not_nifti', 'n+2 in a NIfTI-1 header');
    expectCode(edit(nifti2, (_, b) => b.set([0x6e, 0x2b, 0x31, 0], 4)), 'not_nifti', 'n+1 in a NIfTI-2 header');
    expectCode(good.subarray(0, 300), 'truncated', 'header cut at 300');
    // sizeof_hdr byte-swapped alone: read as big-endian, every other field is then nonsense, still typed
    const swapped = codeOf(edit(good, (dv) => dv.setInt32(0, 348, false)));
    expect(['bad_dims', 'unsupported_datatype', 'bad_vox_offset', 'too_large']).toContain(swapped);
  });

  it('N2: the §1.1 512-byte extension cycle (esize -16 at 352, 16 at 336) is bad_extension at once', () => {
    // Built as the recipe says: NIfTI-1, extension flag set, a record at 352 whose esize -16 points back to
    // a record at 336 (inside intent_name) whose esize 16 points forward to 352 again.
    const b = new Uint8Array(512);
    b.set(good.subarray(0, 348));
    const dv = new DataView(b.buffer);
    [1, 144, 1, 1, 1, 1, 1, 1].forEach((d, i) => dv.setInt16(40 + 2 * i, d, true));
    dv.setFloat32(108, 368, true);
    b[348] = 1;
    dv.setInt32(352, -16, true);
    dv.setInt32(356, 0, true);
    dv.setInt32(336, 16, true);
    dv.setInt32(340, 0, true);
    expectCode(b, 'bad_extension', 'cycle', 100);
    for (const esize of [0, 8, 15, -1, 2 ** 31 - 16]) {
      expectCode(edit(b, (v) => v.setInt32(352, esize, true)), 'bad_extension', `esize ${esize}`, 100);
    }
    // the same record with a valid size is read, and its warning-free walk ends at vox_offset
    expectCode(edit(b, (v) => v.setInt32(352, 16, true)), 'ok', 'esize 16');
  });

  it('N3: extension flag with vox_offset 352 is ignored; an extension running past vox_offset is refused', () => {
    expectCode(edit(good, (_, b) => (b[348] = 1)), 'ok', 'flag, no room');
    const roomy = edit(insert(good, 352, 32), (dv, b) => (dv.setFloat32(108, 384, true), (b[348] = 1)));
    expectCode(edit(roomy, (dv) => dv.setInt32(352, 48, true)), 'bad_extension', 'esize 48 with 32 bytes of room');
    expectCode(edit(roomy, (dv) => dv.setInt32(352, 32, true)), 'ok', 'esize 32 fills the room');
    // a gzipped file whose extensions reach far past the first 544 inflated bytes
    const long = edit(insert(good, 352, 4096), (dv, b) => {
      dv.setFloat32(108, 352 + 4096, true);
      b[348] = 1;
      dv.setInt32(352, 2048, true);
      dv.setInt32(352 + 2048, 2048, true);
    });
    const o = attempt(gz(long));
    expect(o.ok && sha256(o.volume)).toBe(sha256(goodVolume));
  });

  it('N4: vox_offset negative, NaN, infinite, inside the header, fractional, past the end (NIfTI-1 and NIfTI-2)', () => {
    for (const v of [-100, Number.NaN, Number.POSITIVE_INFINITY, 0, 100, 347, 351, 352.5, good.length + 1, 2 ** 40]) {
      expectCode(edit(good, (dv) => dv.setFloat32(108, v, true)), 'bad_vox_offset', `vox_offset ${v}`);
    }
    expectCode(nifti2, 'ok', 'NIfTI-2 control');
    for (const v of [-100n, 0n, 540n, 2n ** 40n, 2n ** 62n, -(2n ** 63n)]) {
      expectCode(edit(nifti2, (dv) => dv.setBigInt64(168, v, true)), 'bad_vox_offset', `NIfTI-2 vox_offset ${v}`);
    }
  });

  it('N5: truncated voxel data and truncated gzip streams', () => {
    for (const cut of [1, 70, 139]) expectCode(good.subarray(0, good.length - cut), 'truncated', `cut ${cut}`);
    const z = gz(insert(good, good.length, 0));
    const big = gz(new Uint8Array(readFileSync(`${NIBABEL_DATA}/anatomical.nii`)));
    for (const b of [z.subarray(0, z.length - 4), big.subarray(0, big.length >> 1)]) expect(codeOf(b)).toBe('truncated');
    expect(codeOf(z.subarray(0, 12))).toBe('truncated');
  });

  it('N6: dims, bitpix, datatype and geometry checks; sizes refused from the header before any allocation', () => {
    expectCode(edit(good, (dv) => dv.setInt16(40, 0, true)), 'bad_dims', 'dim[0] 0');
    expectCode(edit(good, (dv) => dv.setInt16(40, 8, true)), 'bad_dims', 'dim[0] 8');
    expectCode(edit(good, (dv) => dv.setInt16(40, -1, true)), 'bad_dims', 'dim[0] -1');
    expectCode(edit(good, (dv) => dv.setInt16(42, -4, true)), 'bad_dims', 'dim[1] -4');
    expectCode(edit(good, (dv) => dv.setInt16(44, 0, true)), 'bad_dims', 'dim[2] 0');
    expectCode(edit(good, (dv) => (dv.setInt16(40, 7, true), dv.setInt16(54, 0, true))), 'bad_dims', 'dim[7] 0 with dim[0] 7');
    expectCode(edit(good, (dv) => dv.setInt16(72, 16, true)), 'bad_dims', 'bitpix 16 for uint8');
    expectCode(edit(good, (dv) => dv.setInt16(70, 3, true)), 'unsupported_datatype', 'datatype 3');
    expectCode(edit(good, (dv) => (dv.setInt16(70, 1536, true), dv.setInt16(72, 128, true))), 'unsupported_datatype', 'float128');
    // 32767^3 * 32767 voxels: far past maxVoxelBytes, refused without allocating
    const huge = edit(good, (dv) => (dv.setInt16(40, 4, true), [42, 44, 46, 48].forEach((o) => dv.setInt16(o, 32767, true))));
    const d = memoryDelta(() => expectCode(huge, 'too_large', 'huge dims', 200));
    expect(d.arrayBuffers).toBeLessThan(4 * MiB);
    expect(codeOf(good, { maxVoxelBytes: 139 })).toBe('too_large');
    expect(codeOf(good, { maxVoxelBytes: 140 })).toBe('ok');
    // NIfTI-2: 64-bit dims past 2^53 or whose product overflows
    expectCode(edit(nifti2, (dv) => dv.setBigInt64(24, 2n ** 62n, true)), 'bad_dims', 'NIfTI-2 dim 2^62');
    expectCode(edit(nifti2, (dv) => [24, 32, 40].forEach((o) => dv.setBigInt64(o, 2n ** 40n, true))), 'too_large', 'NIfTI-2 2^120 voxels');
    expectCode(edit(nifti2, (dv) => dv.setBigInt64(24, -1n, true)), 'bad_dims', 'NIfTI-2 dim -1');
    // geometry that cannot be a matrix: NaN pixdim under a qform, NaN in the sform
    expectCode(edit(good, (dv) => (dv.setInt16(252, 1, true), dv.setInt16(254, 0, true), dv.setFloat32(80, Number.NaN, true))), 'bad_geometry', 'NaN pixdim');
    expectCode(edit(good, (dv) => dv.setFloat32(284, Number.POSITIVE_INFINITY, true)), 'bad_geometry', 'Inf in srow_x');
  });

  it('N7: a gzip bomb past the declared data stops at the header-derived cap, without holding the bomb', () => {
    const bomb = new Uint8Array(gzipSync(Buffer.concat([good, Buffer.alloc(200 * MiB)]), { level: 9 }));
    expect(bomb.length).toBeLessThan(400_000);
    let o: ReturnType<typeof attempt> | undefined;
    const d = memoryDelta(() => (o = attempt(bomb)));
    expect(o!.ok ? 'ok' : o!.code).toBe('decompressed_too_large');
    expect(o!.ms).toBeLessThan(2000);
    expect(d.arrayBuffers).toBeLessThan(16 * MiB);
  });

  it('N7: the §6.3 512³ bomb stops at limits.maxInflatedBytes (a genuine file that size is read under the default limits)', () => {
    const h = new Uint8Array(352);
    const dv = new DataView(h.buffer);
    dv.setInt32(0, 348, true);
    [3, 512, 512, 512].forEach((v, i) => dv.setInt16(40 + 2 * i, v, true));
    dv.setInt16(70, 2, true);
    dv.setInt16(72, 8, true);
    dv.setFloat32(108, 352, true);
    h.set([0x6e, 0x2b, 0x31, 0], 344);
    const bomb = new Uint8Array(gzipSync(Buffer.concat([h, Buffer.alloc(512 ** 3)]), { level: 9 }));
    expect(bomb.length).toBeLessThan(200_000);
    const cap = 32 * MiB;
    let o: ReturnType<typeof attempt> | undefined;
    const d = memoryDelta(() => (o = attempt(bomb, { maxInflatedBytes: cap })));
    expect(o!.ok ? 'ok' : o!.code).toBe('decompressed_too_large');
    expect(o!.ms).toBeLessThan(5000);
    expect(d.arrayBuffers).toBeLessThan(cap + 64 * MiB);
    expect(d.rss).toBeLessThan(cap + 64 * MiB);
  });

  it('N7: forged ISIZE (0, 1, 2^32-1) is never used to allocate; the length check fails the stream', () => {
    const z = gz(good);
    for (const isize of [0, 1, 0xffffffff]) {
      const forged = edit(z, (dv) => dv.setUint32(z.length - 4, isize, true));
      let o: ReturnType<typeof attempt> | undefined;
      const d = memoryDelta(() => (o = attempt(forged)));
      expect(o!.ok ? 'ok' : o!.code, `ISIZE ${isize}`).toBe('decode_failed');
      expect(d.arrayBuffers).toBeLessThan(16 * MiB);
    }
  });

  it('N7: the ratio guard lets real high-ratio files through (mricron JHU atlases, 108:1 and 151:1)', () => {
    for (const name of ['JHU-WhiteMatter-labels-2mm.nii.gz', 'JHU-WhiteMatter-labels-1mm.nii.gz']) {
      const file = requireData(`${MRICRON}/${name}`);
      const bytes = new Uint8Array(readFileSync(file));
      const ratio = gunzipSync(bytes).length / statSync(file).size;
      expect(ratio).toBeGreaterThan(100);
      expect(codeOf(bytes)).toBe('ok');
    }
  });

  it('N8: pair headers and ni1 magic are refused; multi-member gzip is read whole; trailing junk is refused', () => {
    expect(codeOf(new Uint8Array(readFileSync(`${NIBABEL_DATA}/nifti1.hdr`)))).toBe('not_nifti');
    expect(codeOf(new Uint8Array(readFileSync(`${NIBABEL_DATA}/nifti2.hdr`)))).toBe('not_nifti');
    expectCode(edit(good, (_, b) => b.set([0x6e, 0x69, 0x31, 0], 344)), 'not_nifti', 'ni1 magic in a single file');
    // members split inside the header (first member 100 bytes) and inside the data
    for (const cuts of [[100], [100, 400], [1, 351, 352, 491]]) {
      const parts: Buffer[] = [];
      let at = 0;
      for (const c of [...cuts, good.length]) {
        parts.push(gzipSync(good.subarray(at, c)));
        at = c;
      }
      const o = attempt(new Uint8Array(Buffer.concat(parts)));
      expect(o.ok && sha256(o.volume), `members cut at ${cuts.join(',')}`).toBe(sha256(goodVolume));
    }
    expect(codeOf(new Uint8Array(Buffer.concat([gzipSync(good), Buffer.from('not a gzip member')])))).toBe('decode_failed');
  });

  it('input larger than limits.maxFileBytes is refused before it is parsed', () => {
    expect(codeOf(good, { maxFileBytes: 491 })).toBe('too_large');
  });
});
