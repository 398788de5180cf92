/**
 * Hostile and broken DICOM (reliability classes D1–D17), built from real pydicom test files by byte edits:
 * every case ends in its typed code, quickly, with bounded memory.
 */
import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { parseDicom } from '../../../io/dicom/parse.ts';
import { readDicomItems } from '../../../io/dicom/read_items.ts';
import { PYDICOM_FILES } from '../../_helpers/testdata.ts';

const limits = resolveLimits({ maxInflatedBytes: 64 << 20 });
const file = (n: string) => new Uint8Array(readFileSync(`${PYDICOM_FILES}/${n}`));
const CT = file('CT_small.dcm'); // explicit VR LE
const MR_IMPLICIT = file('MR_small_implicit.dcm');

async function codeOf(bytes: Uint8Array, l = limits): Promise<string> {
  const t0 = Date.now();
  try {
    await parseDicom(bytes, { limits: l, name: 'case', index: 0 });
    return 'ok';
  } catch (e) {
    if (!(e instanceof GatedError)) throw new Error(`untyped ${String(e)}`);
    return e.code;
  } finally {
    expect(Date.now() - t0).toBeLessThan(10_000);
  }
}

/** Offset of the value of the first element with this tag (explicit VR LE, 2-byte length VRs). */
function findTag(b: Uint8Array, group: number, element: number, from = 132): number {
  for (let i = from; i + 8 < b.length; i++) {
    if (b[i] === (group & 0xff) && b[i + 1] === group >> 8 && b[i + 2] === (element & 0xff) && b[i + 3] === element >> 8) return i;
  }
  throw new Error('tag not found');
}

function withUS(b: Uint8Array, group: number, element: number, value: number): Uint8Array {
  const c = new Uint8Array(b);
  const at = findTag(c, group, element);
  new DataView(c.buffer).setUint16(at + 8, value, true);
  return c;
}

/** Explicit VR LE dataset with `depth` nested sequences (undefined lengths), then a tiny image. */
function nested(depth: number): Uint8Array {
  const parts: number[] = [];
  const u16 = (v: number) => parts.push(v & 0xff, v >> 8);
  const u32 = (v: number) => parts.push(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
  for (let i = 0; i < depth; i++) {
    u16(0x0008); u16(0x1115); parts.push(0x53, 0x51, 0, 0); u32(0xffffffff); // SQ, undefined length
    u16(0xfffe); u16(0xe000); u32(0xffffffff); // item, undefined length
  }
  for (let i = 0; i < depth; i++) {
    u16(0xfffe); u16(0xe00d); u32(0); // item delimiter
    u16(0xfffe); u16(0xe0dd); u32(0); // sequence delimiter
  }
  const meta = CT.subarray(0, findTag(CT, 0x0008, 0x0005));
  const out = new Uint8Array(meta.length + parts.length + 100);
  out.set(meta);
  out.set(parts, meta.length);
  return out.subarray(0, meta.length + parts.length);
}

describe('DICOM bad input', () => {
  it('control: the untouched files decode', async () => {
    expect(await codeOf(CT)).toBe('ok');
    expect(await codeOf(MR_IMPLICIT)).toBe('ok');
  });
  it('D1: empty, short, PNG bytes, random bytes, no DICM', async () => {
    expect(await codeOf(new Uint8Array(0))).toBe('not_dicom');
    expect(await codeOf(CT.subarray(0, 131))).toBe('not_dicom');
    expect(await codeOf(new Uint8Array([0x89, 0x50, 0x4e, 0x47, ...new Uint8Array(200)]))).toBe('not_dicom');
    expect(await codeOf(file('no_meta.dcm'))).toBe('not_dicom');
  });
  it('D2: meta header without TransferSyntaxUID', async () => {
    expect(await codeOf(file('meta_missing_tsyntax.dcm'))).toBe('meta_missing_ts');
  });
  it('D3: truncation at many points, explicit and implicit VR, never accepted silently', async () => {
    for (const src of [CT, MR_IMPLICIT]) {
      for (let f = 1; f < 64; f += 3) {
        const cut = Math.floor((src.length * f) / 64);
        const code = await codeOf(src.subarray(0, cut));
        expect(['truncated', 'bad_length', 'not_dicom', 'no_pixel_data', 'meta_missing_ts', 'bad_geometry'], `cut at ${cut}: ${code}`).toContain(code);
      }
    }
  });
  it('D4: element lengths 0x7FFFFFF0 / 0xFFFFFFFF on a non-SQ element (implicit VR)', async () => {
    for (const len of [0x7ffffff0, 0xffffffff]) {
      const c = new Uint8Array(MR_IMPLICIT);
      const at = findTag(c, 0x0008, 0x0060, 200); // Modality, implicit: tag(4) + length(4)
      new DataView(c.buffer).setUint32(at + 4, len, true);
      expect(['truncated', 'bad_length', 'no_pixel_data']).toContain(await codeOf(c));
    }
  });
  it('D5/D6: undefined-length sequences (UN and private) parse or reject, never scan silently', async () => {
    for (const n of ['UN_sequence.dcm', 'priv_SQ.dcm', 'nested_priv_SQ.dcm']) expect(['no_pixel_data', 'truncated', 'bad_length']).toContain(await codeOf(file(n)));
  });
  it('D7: sequence nesting of 65, 1000 and 20000 levels is refused as nesting (64 passes)', async () => {
    expect(await codeOf(nested(64))).toBe('no_pixel_data');
    for (const d of [65, 1000, 20000]) expect(await codeOf(nested(d)), `depth ${d}`).toBe('nesting');
  });
  it('D8: odd-sized RGB image with odd pixel offset decodes', async () => {
    expect(await codeOf(file('SC_rgb_small_odd.dcm'))).toBe('ok');
  });
  it('D9: explicit VR big endian decodes to the same values as its little-endian twin', async () => {
    const be = await parseDicom(file('MR_small_bigendian.dcm'), { limits, name: 'be', index: 0 });
    const le = await parseDicom(file('MR_small.dcm'), { limits, name: 'le', index: 0 });
    expect(Array.from(be.pixels)).toEqual(Array.from(le.pixels));
  });
  it('D10: deflate bomb stops at the cap with bounded memory', async () => {
    const src = file('image_dfl.dcm');
    const tsEnd = findTag(src, 0x0002, 0x0010) + 8 + 22;
    // keep the meta group, replace the deflated body by 200 MB of deflated zeros
    const metaEnd = (() => {
      let i = 132;
      const dv = new DataView(src.buffer, src.byteOffset);
      while (i < src.length && dv.getUint16(i, true) === 0x0002) {
        const vr = String.fromCharCode(src[i + 4]!, src[i + 5]!);
        i += ['OB', 'OW', 'UN', 'SQ', 'UT'].includes(vr) ? 12 + dv.getUint32(i + 8, true) : 8 + dv.getUint16(i + 6, true);
      }
      return i;
    })();
    expect(metaEnd).toBeGreaterThan(tsEnd - 30);
    const bomb = deflateRawSync(Buffer.alloc(200 * 1024 * 1024), { level: 9 });
    const b = new Uint8Array(metaEnd + bomb.length);
    b.set(src.subarray(0, metaEnd));
    b.set(bomb, metaEnd);
    const before = process.memoryUsage().rss;
    expect(await codeOf(b)).toBe('decompressed_too_large');
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
  });
  it('D11: encapsulated oddities (embedded delimiter bytes, fragments) decode or reject cleanly', async () => {
    expect(['ok', 'decode_failed', 'truncated']).toContain(await codeOf(file('JPEG2000-embedded-sequence-delimiter.dcm')));
    expect(await codeOf(file('SC_rgb_rle_2frame.dcm'))).toBe('ok');
  });
  it('D12: unsupported / private transfer syntax is named', async () => {
    const c = new Uint8Array(CT);
    const at = findTag(c, 0x0002, 0x0010);
    const len = new DataView(c.buffer).getUint16(at + 6, true);
    const uid = '1.2.840.113619.5.2'.padEnd(len, '\0');
    for (let i = 0; i < len; i++) c[at + 8 + i] = uid.charCodeAt(i);
    expect(await codeOf(c)).toBe('unsupported_transfer_syntax');
    expect(await codeOf(file('JPGExtended.dcm'))).toBe('unsupported_transfer_syntax');
  });
  it('D13: inconsistent geometry is refused before allocation', async () => {
    expect(await codeOf(withUS(CT, 0x0028, 0x0010, 0))).toBe('bad_geometry'); // Rows = 0
    expect(await codeOf(withUS(withUS(CT, 0x0028, 0x0010, 65535), 0x0028, 0x0011, 65535))).toBe('too_large'); // 8.6 GB declared
    expect(await codeOf(withUS(withUS(CT, 0x0028, 0x0010, 46341), 0x0028, 0x0011, 46341), { ...limits, maxVoxelBytes: 1 << 30 })).toBe('too_large');
    expect(await codeOf(withUS(CT, 0x0028, 0x0101, 17))).toBe('bad_geometry'); // BitsStored > BitsAllocated
    expect(await codeOf(withUS(CT, 0x0028, 0x0100, 12))).toBe('bad_geometry');
  });
  it('D15: hostile strings (64 KB, control characters) are carried, not interpreted', async () => {
    const obj = await parseDicom(CT, { limits, name: '<script>alert(1)</script>', index: 0 });
    expect(obj.sourceName).toBe('<script>alert(1)</script>'); // a label only; never a path, never HTML
  });
  it('D16/D17: a folder mixing series, junk and a hostile SOPInstanceUID splits cleanly and writes nothing', async () => {
    const hostile = new Uint8Array(CT);
    const at = findTag(hostile, 0x0008, 0x0018);
    const len = new DataView(hostile.buffer).getUint16(at + 6, true);
    const evil = '../../etc/x'.padEnd(len, '\0');
    for (let i = 0; i < len; i++) hostile[at + 8 + i] = evil.charCodeAt(i);
    const items = [
      { name: 'a', bytes: hostile },
      { name: 'b', bytes: file('MR_small.dcm') },
      { name: 'junk.txt', bytes: new TextEncoder().encode('not dicom at all') },
      { name: 'c', bytes: file('MR_truncated.dcm') },
    ].map(({ name, bytes }) => ({ name, size: bytes.length, read: async () => bytes }));
    const res = await readDicomItems(items, { limits });
    expect(res.volumes).toHaveLength(2);
    expect(res.rejected.map((r) => [r.name, r.code]).sort()).toEqual([
      ['c', 'truncated'],
      ['junk.txt', 'not_dicom'],
    ]);
    expect(res.volumes.find((v) => v.meta.modality === 'CT')!.meta.sopInstanceUIDs).toEqual(['../../etc/x']);
  });
});
