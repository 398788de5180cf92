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

const u16 = (v: number) => [v & 0xff, (v >> 8) & 0xff];
const u32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
const cat = (...parts: (Uint8Array | number[])[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
};
const LONG = ['OB', 'OW', 'OV', 'SQ', 'SV', 'UN', 'UT', 'UV'];
/** One explicit VR little-endian element. */
function el(group: number, element: number, vr: string, value: Uint8Array | number[], length = value.length): Uint8Array {
  const head = LONG.includes(vr) ? [...u16(group), ...u16(element), vr.charCodeAt(0), vr.charCodeAt(1), 0, 0, ...u32(length)] : [...u16(group), ...u16(element), vr.charCodeAt(0), vr.charCodeAt(1), ...u16(length)];
  return cat(head, value);
}
const item = (tag: number, length: number) => [...u16(0xfffe), ...u16(tag), ...u32(length)];
/** Offset of the top-level PixelData tag (the last one in the file). */
const pixelTag = (b: Uint8Array) => Buffer.from(b).lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));

/** The fragments of an explicit-VR encapsulated PixelData (Basic Offset Table item dropped). */
function fragmentsOf(b: Uint8Array): Uint8Array[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Uint8Array[] = [];
  let pos = pixelTag(b) + 12;
  for (let first = true; dv.getUint16(pos + 2, true) === 0xe000; first = false) {
    const len = dv.getUint32(pos + 4, true);
    if (!first) out.push(b.subarray(pos + 8, pos + 8 + len));
    pos += 8 + len;
  }
  return out;
}

/** Rebuilds the file with new encapsulated pixel data after everything that preceded PixelData. */
function reencapsulate(b: Uint8Array, frags: Uint8Array[], opts: { bot?: number[]; delimiterLength?: number; before?: Uint8Array } = {}): Uint8Array {
  const bot = opts.bot ?? [];
  const parts: (Uint8Array | number[])[] = [b.subarray(0, pixelTag(b)), opts.before ?? [], [...u16(0x7fe0), ...u16(0x0010), 0x4f, 0x42, 0, 0, ...u32(0xffffffff)], item(0xe000, bot.length * 4), bot.flatMap(u32)];
  for (const f of frags) parts.push(item(0xe000, f.length), f);
  parts.push(item(0xe0dd, opts.delimiterLength ?? 0));
  return cat(...parts);
}

function split(f: Uint8Array, n: number): Uint8Array[] {
  const step = Math.ceil(f.length / n / 2) * 2;
  return Array.from({ length: n }, (_, i) => f.subarray(i * step, Math.min(f.length, (i + 1) * step))).filter((x) => x.length > 0);
}

async function pixelsOf(bytes: Uint8Array): Promise<number[]> {
  return Array.from((await parseDicom(bytes, { limits, name: 'x', index: 0 })).pixels as ArrayLike<number>);
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
    let seed = 7;
    const random = Uint8Array.from({ length: 4096 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    expect(await codeOf(random)).toBe('not_dicom');
    expect(await codeOf(file('no_meta.dcm'))).toBe('not_dicom');
  });
  it('D2: meta header without TransferSyntaxUID; without group length is accepted', async () => {
    expect(await codeOf(file('meta_missing_tsyntax.dcm'))).toBe('meta_missing_ts');
    const at = findTag(CT, 0x0002, 0x0000);
    const noGroupLength = cat(CT.subarray(0, at), CT.subarray(at + 12));
    expect(await pixelsOf(noGroupLength)).toEqual(await pixelsOf(CT));
  });
  it('D3: every cut through the header and every 1/64 of the file is refused, explicit and implicit VR', async () => {
    for (const src of [CT, MR_IMPLICIT]) {
      const cuts = new Set<number>();
      for (let c = 132; c < pixelTag(src) + 24; c++) cuts.add(c);
      for (let f = 1; f < 64; f++) cuts.add(Math.floor((src.length * f) / 64));
      for (const cut of cuts) {
        const code = await codeOf(src.subarray(0, cut));
        expect(['truncated', 'no_pixel_data', 'meta_missing_ts'], `cut at ${cut}: ${code}`).toContain(code);
      }
      // cut inside the pixel data: the walker, not a short read, says so
      expect(await codeOf(src.subarray(0, src.length - 1))).toBe('truncated');
    }
  });
  it('D4: element lengths 0x7FFFFFF0 / 0xFFFFFFFF on non-sequence elements', async () => {
    for (const len of [0x7ffffff0, 0xffffffff]) {
      const c = new Uint8Array(MR_IMPLICIT);
      const at = findTag(c, 0x0008, 0x0060, 200); // Modality, implicit: tag(4) + length(4)
      new DataView(c.buffer).setUint32(at + 4, len, true);
      expect(await codeOf(c), `implicit ${len}`).toBe('bad_length');
      const e = new Uint8Array(CT);
      new DataView(e.buffer).setUint32(pixelTag(e) + 8, len, true); // explicit OW PixelData
      expect(await codeOf(e), `explicit ${len}`).toBe('bad_length');
    }
    const past = new Uint8Array(CT);
    new DataView(past.buffer).setUint32(pixelTag(past) + 8, CT.length - pixelTag(CT) - 12 + 2, true);
    expect(await codeOf(past)).toBe('truncated');
  });
  it('D5: undefined-length sequences: UN/private parse deterministically, missing or wrong delimiters are refused', async () => {
    expect(await codeOf(file('UN_sequence.dcm'))).toBe('no_pixel_data');
    expect(await codeOf(file('priv_SQ.dcm'))).toBe('no_pixel_data');
    expect(await codeOf(file('nested_priv_SQ.dcm'))).toBe('bad_geometry'); // PixelData found, no Rows/Columns
    const n = nested(3);
    expect(await codeOf(n.subarray(0, n.length - 8))).toBe('truncated'); // last sequence delimiter missing
    const wrong = new Uint8Array(n);
    const firstEnd = n.length - 6 * 8; // innermost item delimiter
    new DataView(wrong.buffer).setUint16(firstEnd + 2, 0xe0dd, true); // sequence delimiter where the item ends
    expect(await codeOf(wrong)).toBe('bad_length');
  });
  it('D6: an item delimiter with a non-zero length is a typed error (dicom-parser threw a TypeError)', async () => {
    const n = new Uint8Array(nested(2));
    new DataView(n.buffer).setUint32(n.length - 4 * 8 + 4, 4, true);
    expect(await codeOf(n)).toBe('bad_length');
  });
  it('D7: sequence nesting of 65, 1000 and 20000 levels is refused as nesting (64 passes), quickly', async () => {
    expect(await codeOf(nested(64))).toBe('no_pixel_data');
    for (const d of [65, 1000, 20000]) {
      const t0 = performance.now();
      expect(await codeOf(nested(d)), `depth ${d}`).toBe('nesting');
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  });
  it('D8: odd-length element before PixelData (odd pixel offset) and odd-sized RGB decode', async () => {
    const at = pixelTag(CT);
    const odd = cat(CT.subarray(0, at), el(0x0029, 0x0010, 'LO', new TextEncoder().encode('ABC')), CT.subarray(at));
    expect(pixelTag(odd) % 2).toBe(1);
    expect(await pixelsOf(odd)).toEqual(await pixelsOf(CT));
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
  it('D11: encapsulated oddities: bad offset tables, split fragments, delimiter quirks, fragments past the end', async () => {
    const rle = file('SC_rgb_rle_2frame.dcm');
    const rleFrags = fragmentsOf(rle);
    expect(rleFrags).toHaveLength(2);
    const want = await pixelsOf(rle);
    expect(await pixelsOf(reencapsulate(rle, rleFrags, { bot: [5, 99999] })), 'inconsistent BOT ignored').toEqual(want);
    expect(await pixelsOf(reencapsulate(rle, rleFrags, { delimiterLength: 0xffffffff })), 'delimiter length 0xFFFFFFFF').toEqual(want);
    expect(await codeOf(reencapsulate(rle, rleFrags, { delimiterLength: 4 }))).toBe('bad_length');
    const noDelimiter = reencapsulate(rle, rleFrags);
    expect(await codeOf(noDelimiter.subarray(0, noDelimiter.length - 8))).toBe('truncated');
    const past = new Uint8Array(reencapsulate(rle, rleFrags));
    new DataView(past.buffer).setUint32(pixelTag(past) + 12 + 8 + 4, rleFrags[0]!.length + 1_000_000, true);
    expect(await codeOf(past)).toBe('truncated');

    // one J2K frame in three fragments; then two such frames with no offset table (split on SOC markers)
    const j2k = file('JPEG2000.dcm');
    const [cs] = fragmentsOf(j2k);
    const one = await pixelsOf(j2k);
    expect(await pixelsOf(reencapsulate(j2k, split(cs!, 3)))).toEqual(one);
    const twoFrames = reencapsulate(j2k, [...split(cs!, 2), ...split(cs!, 3)], { before: el(0x0028, 0x0008, 'IS', new TextEncoder().encode('2 ')) });
    const two = await parseDicom(twoFrames, { limits, name: 'x', index: 0 });
    expect(two.numberOfFrames).toBe(2);
    expect(Array.from(two.pixels as ArrayLike<number>)).toEqual([...one, ...one]);
    expect(['ok', 'decode_failed']).toContain(await codeOf(file('JPEG2000-embedded-sequence-delimiter.dcm')));
  });
  it('D12: unsupported / private transfer syntaxes and 12-bit lossy colour JPEG are named', async () => {
    for (const uidText of ['1.2.840.113619.5.2', '1.2.3.4']) {
      const c = new Uint8Array(CT);
      const at = findTag(c, 0x0002, 0x0010);
      const len = new DataView(c.buffer).getUint16(at + 6, true);
      const uid = uidText.padEnd(len, '\0');
      for (let i = 0; i < len; i++) c[at + 8 + i] = uid.charCodeAt(i);
      try {
        await parseDicom(c, { limits, name: 'x', index: 0 });
        expect.unreachable();
      } catch (e) {
        expect((e as GatedError).code).toBe('unsupported_transfer_syntax');
        expect((e as GatedError).message).toContain(uidText);
      }
    }
    // 12-bit lossy JPEG decodes for grey images (tests/io/dicom/codecs.test.ts); 12-bit colour is refused by name
    expect(await codeOf(file('JPGExtended.dcm'))).toBe('ok');
    expect(await codeOf(withUS(file('JPGExtended.dcm'), 0x0028, 0x0002, 3))).toBe('unsupported_transfer_syntax');
  });
  it('D13: inconsistent geometry is refused before allocation', async () => {
    expect(await codeOf(withUS(CT, 0x0028, 0x0010, 0))).toBe('bad_geometry'); // Rows = 0
    expect(await codeOf(withUS(withUS(CT, 0x0028, 0x0010, 65535), 0x0028, 0x0011, 65535))).toBe('too_large'); // 8.6 GB declared
    expect(await codeOf(withUS(withUS(CT, 0x0028, 0x0010, 46341), 0x0028, 0x0011, 46341), { ...limits, maxVoxelBytes: 1 << 30 })).toBe('too_large');
    expect(await codeOf(withUS(CT, 0x0028, 0x0101, 17))).toBe('bad_geometry'); // BitsStored > BitsAllocated
    expect(await codeOf(withUS(CT, 0x0028, 0x0100, 12))).toBe('bad_geometry');
    expect(await codeOf(withUS(CT, 0x0028, 0x0002, 2))).toBe('bad_geometry'); // SamplesPerPixel 2
    expect(['truncated', 'bad_geometry']).toContain(await codeOf(withUS(CT, 0x0028, 0x0010, 129))); // one row more than stored
    const at = pixelTag(CT);
    const frames = cat(CT.subarray(0, at), el(0x0028, 0x0008, 'IS', new TextEncoder().encode('2147483647')), CT.subarray(at));
    const before = process.memoryUsage().arrayBuffers;
    expect(await codeOf(frames)).toBe('too_large');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
  });
  it('D14: OV/SV/UV take the 4-byte length form; an Extended Offset Table is used or refused', async () => {
    const at = pixelTag(CT);
    const eight = new Uint8Array(8).fill(0x41);
    const vrs = cat(CT.subarray(0, at), el(0x0029, 0x1001, 'OV', eight), el(0x0029, 0x1002, 'SV', eight), el(0x0029, 0x1003, 'UV', eight), CT.subarray(at));
    const h = await parseDicom(vrs, { limits, name: 'x', index: 0 });
    expect(Array.from(h.pixels as ArrayLike<number>)).toEqual(await pixelsOf(CT));

    const rle = file('SC_rgb_rle_2frame.dcm');
    const frags = fragmentsOf(rle);
    const u64 = (vals: number[]) => cat(...vals.map((v) => [...u32(v), 0, 0, 0, 0]));
    const offsets = [0, frags[0]!.length + 8];
    const eot = (offs: number[], lens: number[]) => cat(el(0x7fe0, 0x0001, 'OV', u64(offs)), el(0x7fe0, 0x0002, 'OV', u64(lens)));
    const withEot = reencapsulate(rle, frags, { before: eot(offsets, frags.map((f) => f.length)) });
    expect(await pixelsOf(withEot)).toEqual(await pixelsOf(rle));
    expect(await codeOf(reencapsulate(rle, frags, { before: eot([0, 12345], [1, 1]) }))).toBe('bad_length');
    expect(await codeOf(reencapsulate(rle, frags, { before: el(0x7fe0, 0x0001, 'OV', u64([0])) }))).toBe('bad_length'); // one offset, two frames
  });
  it('D15: hostile strings (64 KB UT, control characters, markup) are carried verbatim, not interpreted', async () => {
    const at = findTag(CT, 0x0010, 0x0010);
    const len = new DataView(CT.buffer, CT.byteOffset).getUint16(at + 6, true);
    const name = '\x1b[31m<script>alert(1)</script>';
    const ut = new TextEncoder().encode('<img src=x onerror=alert(1)>'.repeat(2341).padEnd(65536, ' '));
    const hostile = cat(CT.subarray(0, at), el(0x0010, 0x0010, 'PN', new TextEncoder().encode(name + (name.length % 2 ? ' ' : ''))), CT.subarray(at + 8 + len, pixelTag(CT)), el(0x0040, 0xa160, 'UT', ut), CT.subarray(pixelTag(CT)));
    const obj = await parseDicom(hostile, { limits, name: '<script>alert(1)</script>', index: 0 });
    expect(obj.patient?.PatientName).toBe(name);
    expect(obj.sourceName).toBe('<script>alert(1)</script>'); // a label only; never a path, never HTML
    expect(Array.from(obj.pixels as ArrayLike<number>)).toEqual(await pixelsOf(CT));
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
