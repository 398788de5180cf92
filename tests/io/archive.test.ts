/**
 * openZip on archives built by Python's zipfile (and byte-patched where zipfile refuses to lie): the good
 * paths return the exact stored bytes; hostile ones (reliability classes Z1–Z4) fail with a typed code,
 * quickly and without inflating more than a chunk.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { resolveLimits, type Limits } from '../../core/limits.ts';
import { openZip } from '../../io/archive.ts';
import { loadInputDirect } from '../../io/load.ts';
import { runPython } from '../_helpers/python.ts';
import { PYDICOM_FILES, requireData } from '../_helpers/testdata.ts';

const BUILD = String.raw`
import sys, io, stat, struct, zipfile, zlib
d, ct, mr = sys.argv[1], open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read()
D = zipfile.ZIP_DEFLATED

def write(name, entries, method=D):
    with zipfile.ZipFile(d + '/' + name, 'w', method) as z:
        for e in entries: z.writestr(*e)

def info(name, data=b'x', attr=None, extra=b'', method=D):
    zi = zipfile.ZipInfo(name); zi.compress_type = method; zi.extra = extra
    if attr is not None: zi.external_attr = attr << 16
    return zi, data

def patch(src, dst, fn):
    b = bytearray(open(d + '/' + src, 'rb').read())
    eocd = b.rfind(b'PK\x05\x06'); cd = struct.unpack('<I', b[eocd + 16:eocd + 20])[0]
    fn(b, cd, eocd); open(d + '/' + dst, 'wb').write(bytes(b))

inner = io.BytesIO()
with zipfile.ZipFile(inner, 'w', D) as z: z.writestr('deep.dcm', ct)
write('mixed.zip', [info('series/', b''), ('series/ct.dcm', ct), info('series/mr.dcm', mr, method=zipfile.ZIP_STORED),
                    ('__MACOSX/series/._ct.dcm', b'\0\5\26\7'), ('series/.DS_Store', b'Bud1'), ('DICOMDIR', b'\0' * 200),
                    ('readme.txt', b'hello'), ('inner.zip', inner.getvalue()), ('renamed.dcm', inner.getvalue()),
                    info('old.dcm', b'abc', method=zipfile.ZIP_BZIP2)])
open(d + '/inner.bin', 'wb').write(inner.getvalue())

slips = ['../evil.txt', '/abs.txt', 'C:\\win.txt', 'c:/win.txt', 'a\\..\\..\\c.txt', 'a/../../b.txt', '\\\\server\\share\\x.txt', 'ok/../../../x', 'nulX.txt']
for i, n in enumerate(slips): write('slip%d.zip' % i, [('good.dcm', ct), info(n)])
# zipfile cuts names at NUL, so put the NUL in afterwards (local and central copies of the name)
b = open(d + '/slip8.zip', 'rb').read(); open(d + '/slip8.zip', 'wb').write(b.replace(b'nulX.txt', b'nul\0.txt'))
u = b'../evil.txt'
write('slip_unicode.zip', [info('safe.txt', extra=struct.pack('<HHBI', 0x7075, 5 + len(u), 1, zlib.crc32(b'safe.txt')) + u)])
write('symlink.zip', [('good.dcm', ct), info('link', b'../../etc', stat.S_IFLNK | 0o777)])
write('many.zip', [('%d.dcm' % i, b'') for i in range(100000)], zipfile.ZIP_STORED)
write('ratio.zip', [('a.dcm', b'\0' * (64 << 20))])
write('total.zip', [('b%d.dcm' % i, b'\0' * (8 << 20)) for i in range(3)])

# declared 1000 bytes, inflates to 64 MiB: central directory and local header both lie
def lie(b, cd, eocd):
    struct.pack_into('<I', b, cd + 24, 1000); struct.pack_into('<I', b, 22, 1000)
patch('ratio.zip', 'lying.zip', lie)
write('stored.zip', [('a.dcm', ct)], zipfile.ZIP_STORED)
patch('stored.zip', 'lying_stored.zip', lambda b, cd, eocd: struct.pack_into('<I', b, cd + 24, 10))
# the same central record twice: two entries over one local header (overlapping-entry bomb)
def dup(b, cd, eocd):
    rec = bytes(b[cd:eocd]); tail = bytearray(b[eocd:])
    struct.pack_into('<HHI', tail, 8, 2, 2, 2 * len(rec))
    b[cd:] = rec + rec + tail
patch('stored.zip', 'overlap.zip', dup)
patch('stored.zip', 'bad_cd.zip', lambda b, cd, eocd: b.__setitem__(slice(cd, cd + 4), b'PK\x01\x09'))
def flag(bits):
    def f(b, cd, eocd):
        struct.pack_into('<H', b, cd + 8, struct.unpack('<H', b[cd + 8:cd + 10])[0] | bits)
        struct.pack_into('<H', b, 6, struct.unpack('<H', b[6:8])[0] | bits)
    return f
patch('stored.zip', 'encrypted.zip', flag(1))
patch('stored.zip', 'strong_encryption.zip', flag(0x41))
# sizes say "see ZIP64 extra" but the extra field is 4 bytes instead of 8
write('z64.zip', [info('a.dcm', b'abc', extra=struct.pack('<HHI', 1, 4, 0))], zipfile.ZIP_STORED)
def z64(b, cd, eocd):
    struct.pack_into('<II', b, cd + 20, 0xFFFFFFFF, 0xFFFFFFFF)
patch('z64.zip', 'zip64_short_extra.zip', z64)
patch('stored.zip', 'forged_count.zip', lambda b, cd, eocd: struct.pack_into('<HH', b, eocd + 8, 0xFFFF, 0xFFFF))
open(d + '/empty.zip', 'wb').write(b'PK\x05\x06' + b'\0' * 18)
`;

const CT = requireData(join(PYDICOM_FILES, 'CT_small.dcm'));
const MR = requireData(join(PYDICOM_FILES, 'MR_small.dcm'));
const limits = resolveLimits();
let dir: string;
const zip = (name: string) => new Uint8Array(readFileSync(join(dir, name)));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gv-zip-'));
  runPython(BUILD, [dir, CT, MR]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Opens, then reads every item; returns the code of the first failure, with time and memory spent. */
async function outcome(name: string, lim: Limits = limits): Promise<{ code: string; ms: number; grewMiB: number }> {
  const bytes = zip(name);
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let code = 'ok';
  try {
    const { items } = await openZip(bytes, lim);
    for (const item of items) await item.read();
  } catch (e) {
    if (!(e instanceof GatedError)) throw e;
    code = e.code;
  }
  return { code, ms: performance.now() - t0, grewMiB: (process.memoryUsage().arrayBuffers - before) / 2 ** 20 };
}

describe('openZip: ordinary archives', () => {
  it('yields entries lazily with their exact bytes, and reports what it skipped', async () => {
    const { items, skipped } = await openZip(zip('mixed.zip'), limits);
    expect(items.map((i) => i.name)).toEqual(['series/ct.dcm', 'series/mr.dcm', 'readme.txt', 'renamed.dcm']);
    const byName = Object.fromEntries(items.map((i) => [i.name, i]));
    expect(Buffer.from(await byName['series/ct.dcm']!.read()).equals(readFileSync(CT))).toBe(true);
    expect(Buffer.from(await byName['series/mr.dcm']!.read()).equals(readFileSync(MR))).toBe(true);
    expect(new TextDecoder().decode(await byName['readme.txt']!.read())).toBe('hello');
    expect(byName['series/ct.dcm']!.size).toBe(readFileSync(CT).length);
    // a nested zip under another name comes back as its own bytes, never opened
    expect(Buffer.from(await byName['renamed.dcm']!.read()).equals(readFileSync(join(dir, 'inner.bin')))).toBe(true);
    // reading twice gives the same bytes again
    expect(Buffer.from(await byName['series/ct.dcm']!.read()).equals(readFileSync(CT))).toBe(true);

    const why = Object.fromEntries(skipped.map((s) => [s.name, s.message]));
    expect(Object.keys(why).sort()).toEqual(['DICOMDIR', '__MACOSX/series/._ct.dcm', 'inner.zip', 'old.dcm', 'series/', 'series/.DS_Store'].sort());
    expect(why['series/']).toMatch(/directory/);
    expect(why['__MACOSX/series/._ct.dcm']).toMatch(/__MACOSX/);
    expect(why['DICOMDIR']).toMatch(/DICOMDIR/);
    expect(why['inner.zip']).toMatch(/nested archive/);
    expect(why['old.dcm']).toMatch(/compression method 12/);
    expect(skipped.every((s) => s.code === 'unsupported_format')).toBe(true);
  });

  it('an empty archive is valid and holds nothing', async () => {
    expect(await openZip(zip('empty.zip'), limits)).toEqual({ items: [], skipped: [] });
  });

  it('through the loader: DICOM read, txt and the renamed nested zip rejected, metadata skipped', async () => {
    const res = await loadInputDirect(join(dir, 'mixed.zip'), { sandbox: false });
    expect(res.format).toBe('dicom');
    expect(res.volumes.length).toBeGreaterThanOrEqual(1);
    const rejected = res.rejected.map((r) => r.name);
    for (const n of ['readme.txt', 'renamed.dcm', 'DICOMDIR', '__MACOSX/series/._ct.dcm', 'series/.DS_Store', 'inner.zip']) expect(rejected).toContain(n);
  });
});

describe('Z1: names that escape the archive refuse it whole (zip_path)', () => {
  it.each([
    ['../evil.txt', 0],
    ['/abs.txt', 1],
    ['C:\\win.txt', 2],
    ['c:/win.txt', 3],
    ['a\\..\\..\\c.txt', 4],
    ['a/../../b.txt', 5],
    ['\\\\server\\share\\x.txt (UNC)', 6],
    ['ok/../../../x', 7],
    ['NUL byte in the name', 8],
  ])('%s', async (_name, i) => {
    const r = await outcome(`slip${i}.zip`);
    expect(r.code).toBe('zip_path');
    expect(r.ms).toBeLessThan(1000);
  });

  it('an Info-ZIP Unicode path extra field that climbs out, behind an innocent raw name', async () => {
    expect((await outcome('slip_unicode.zip')).code).toBe('zip_path');
  });

  it('a symlink entry (S_IFLNK in the unix mode bits)', async () => {
    expect((await outcome('symlink.zip')).code).toBe('zip_path');
  });
});

describe('Z2: bombs are capped on inflated bytes', () => {
  it('10^5 tiny entries: too_large from the directory count, in well under a second', async () => {
    const r = await outcome('many.zip');
    expect(r.code).toBe('too_large');
    expect(r.ms).toBeLessThan(500);
    // the same archive is fine when the limit allows it (so the count, not the archive, decided)
    const big = await openZip(zip('many.zip'), resolveLimits({ maxZipEntries: 100_000 }));
    expect(big.items).toHaveLength(100_000);
  });

  it('one 64 MiB entry of zeros (~1000:1) over a 16 MiB per-entry cap: decompressed_too_large before inflating', async () => {
    const r = await outcome('ratio.zip', resolveLimits({ maxZipEntryBytes: 16 << 20 }));
    expect(r.code).toBe('decompressed_too_large');
    expect(r.grewMiB).toBeLessThan(8);
    expect((await outcome('ratio.zip', resolveLimits({ maxZipEntryBytes: 64 << 20 }))).code).toBe('ok');
  });

  it('three 8 MiB entries over a 20 MiB total cap: decompressed_too_large', async () => {
    expect((await outcome('total.zip', resolveLimits({ maxZipTotalBytes: 20 << 20 }))).code).toBe('decompressed_too_large');
    expect((await outcome('total.zip', resolveLimits({ maxZipTotalBytes: 24 << 20 }))).code).toBe('ok');
  });

  it('lying sizes: declares 1000 bytes, inflates to 64 MiB → bad_archive after one chunk, memory bounded', async () => {
    const { items } = await openZip(zip('lying.zip'), limits);
    expect(items[0]!.size).toBe(1000);
    const r = await outcome('lying.zip');
    expect(r.code).toBe('bad_archive');
    expect(r.grewMiB).toBeLessThan(8);
    expect(r.ms).toBeLessThan(1000);
  });

  it('lying sizes on a stored entry (compressed ≠ uncompressed) → bad_archive', async () => {
    expect((await outcome('lying_stored.zip')).code).toBe('bad_archive');
  });

  it('two directory records over one local entry (overlapping-entry bomb) → bad_archive', async () => {
    expect((await outcome('overlap.zip')).code).toBe('bad_archive');
    expect((await outcome('stored.zip')).code).toBe('ok');
  });
});

describe('Z4: damaged, encrypted and odd archives are bad_archive', () => {
  it.each(['bad_cd.zip', 'encrypted.zip', 'strong_encryption.zip', 'zip64_short_extra.zip', 'forged_count.zip'])('%s', async (name) => {
    const r = await outcome(name);
    expect(r.code).toBe('bad_archive');
    expect(r.ms).toBeLessThan(1000);
  });

  it('truncated at every 1/16 of its length, or random bytes: bad_archive, never a crash', async () => {
    const whole = zip('mixed.zip');
    for (let i = 1; i < 16; i++) {
      const cut = whole.subarray(0, Math.floor((whole.length * i) / 16));
      const code = await openZip(cut, limits).then(
        () => 'ok',
        (e: unknown) => (e instanceof GatedError ? e.code : 'untyped'),
      );
      expect([i, code]).toEqual([i, 'bad_archive']);
    }
    let x = 1;
    const noise = Uint8Array.from({ length: 4096 }, () => (x = (x * 48271) % 2147483647) & 255);
    const code = await openZip(noise, limits).catch((e: unknown) => (e as GatedError).code);
    expect(code).toBe('bad_archive');
  });
});
