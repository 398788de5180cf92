/** Hostile and awkward images (reliability classes I1–I4): typed codes, no crash, bounded time and memory. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { readImage } from '../../../io/image/read.ts';
import { loadSharp, sharpError, untrustedSharp } from '../../../io/image/sharp_setup.ts';
import type { Volume } from '../../../io/volume.ts';
import { PYDICOM_FILES, requireData, SKIMAGE_DATA } from '../../_helpers/testdata.ts';
import { expectSamePixels, pilDecode } from './pil_oracle.ts';
import { fixture, imageFixtures, pngBomb, removeImageFixtures } from './fixtures.ts';

const ctx = { limits: resolveLimits() };
afterAll(removeImageFixtures);
const sk = (f: string) => new Uint8Array(readFileSync(requireData(join(SKIMAGE_DATA, f))));

async function outcome(bytes: Uint8Array, limits = ctx.limits): Promise<{ code: string; ms: number; volume?: Volume }> {
  const t0 = performance.now();
  try {
    const volume = await readImage(bytes, { limits }, 'photo.png');
    return { code: 'ok', ms: performance.now() - t0, volume };
  } catch (e) {
    if (!(e instanceof GatedError)) throw e;
    return { code: e.code, ms: performance.now() - t0 };
  }
}

const SVG = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
const PDF = new TextEncoder().encode('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');
// ISO-BMFF 'ftyp' box with brand heic: what a HEIF photo starts with
const HEIF = new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70, 0x68, 0x65, 0x69, 0x63, 0, 0, 0, 0, 0x6d, 0x69, 0x66, 0x31, 0x68, 0x65, 0x69, 0x63, ...new Array<number>(64).fill(0)]);

describe('I1: pixel bombs', () => {
  let bomb: Uint8Array;
  beforeAll(async () => {
    bomb = await pngBomb(20000, 20000);
  });

  it('a small valid PNG claiming 20000x20000 is too_many_pixels, quickly, without decoding', async () => {
    expect(bomb.length).toBeLessThan(1 << 20); // 400 MP in under 1 MiB
    const before = process.memoryUsage();
    const r = await outcome(bomb, resolveLimits({ maxImagePixels: 50_000_000 }));
    const after = process.memoryUsage();
    expect(r.code).toBe('too_many_pixels');
    expect(r.ms).toBeLessThan(1000);
    // Decoding would need 400 MB; a header read needs next to nothing.
    expect(after.rss - before.rss).toBeLessThan(64 << 20);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(16 << 20);
  });

  it('the cap comes from the limits: camera.png (512x512) passes at 262144 pixels, fails at 262143', async () => {
    expect((await outcome(sk('camera.png'), resolveLimits({ maxImagePixels: 512 * 512 }))).code).toBe('ok');
    expect((await outcome(sk('camera.png'), resolveLimits({ maxImagePixels: 512 * 512 - 1 }))).code).toBe('too_many_pixels');
  });

  it('the sharp pipeline enforces the cap on its own too (limitInputPixels)', async () => {
    const pipeline = await untrustedSharp(bomb, resolveLimits({ maxImagePixels: 1_000_000 }));
    const err = await pipeline.raw().toBuffer().then(
      () => undefined,
      (e: unknown) => sharpError(e, 'decode'),
    );
    expect(err?.code).toBe('too_many_pixels');
  });
});

describe('I2: format confusion (the name says .png; bytes decide)', () => {
  it.each([
    ['SVG', SVG],
    ['PDF', PDF],
    ['HEIF', HEIF],
    ['GIF', sk('no_time_for_that_tiny.gif')],
    ['DICOM whose preamble starts with TIFF magic', new Uint8Array(readFileSync(requireData(join(PYDICOM_FILES, 'CT_small.dcm'))))],
    ['empty', new Uint8Array(0)],
    ['text', new TextEncoder().encode('just some text, not pixels')],
  ])('%s bytes → not_image', async (_kind, bytes) => {
    const r = await outcome(bytes);
    expect(r.code).toBe('not_image');
    expect(r.ms).toBeLessThan(1000);
  });

  it('a TIFF named .png is read as the TIFF it is (pixels equal PIL)', async () => {
    const path = join(imageFixtures(), 'rgb.tif');
    const r = await outcome(new Uint8Array(readFileSync(path)));
    expect(r.code).toBe('ok');
    expectSamePixels(r.volume!, pilDecode([{ path }])[0]!);
  });

  it('behind the sniff, libvips itself refuses SVG, PDF and GIF although this build has those loaders', async () => {
    const sharp = await loadSharp();
    // capability present in the bundled libvips: only our block stops it
    expect(sharp.format.svg.input.buffer).toBe(true);
    expect(sharp.format.gif.input.buffer).toBe(true);
    for (const bytes of [SVG, PDF, sk('no_time_for_that_tiny.gif')]) {
      const err = await (await untrustedSharp(bytes, ctx.limits)).metadata().then(
        () => undefined,
        (e: unknown) => sharpError(e, 'probe'),
      );
      expect(err?.code).toBe('not_image');
    }
  });
});

describe('I3: truncated and corrupt files', () => {
  it("skimage's truncated.jpg is corrupt_image", async () => {
    expect((await outcome(sk('truncated.jpg'))).code).toBe('corrupt_image');
  });

  it.each([
    ['PNG', () => sk('camera.png')],
    ['JPEG', () => sk('rocket.jpg')],
    ['TIFF', () => fixture('rgb.tif')],
    ['WebP', () => fixture('anim.webp')],
  ])('%s cut at 1/8 … 7/8 of its length: corrupt_image every time, never pixels', async (_kind, make) => {
    const whole = make();
    expect((await outcome(whole)).code).toBe('ok');
    for (let i = 1; i < 8; i++) {
      const r = await outcome(whole.subarray(0, Math.floor((whole.length * i) / 8)));
      expect([i, r.code]).toEqual([i, 'corrupt_image']);
      expect(r.ms).toBeLessThan(2000);
    }
  });

  it('a PNG with a damaged IDAT (bad CRC) is corrupt_image', async () => {
    const b = sk('camera.png').slice();
    const idat = Buffer.from(b).indexOf('IDAT');
    b[idat + 100] = b[idat + 100]! ^ 0xff;
    expect((await outcome(b)).code).toBe('corrupt_image');
  });
});

describe('I4: awkward but valid images are normalised, with warnings', () => {
  it('multi-page TIFF and animated WebP: first page only, warning names the page count', async () => {
    for (const [name, pages] of [['multi.tif', 3], ['anim.webp', 3]] as const) {
      const r = await outcome(fixture(name));
      expect(r.volume?.shape).toEqual([8, 8, 1, 3]);
      expect(r.volume?.meta.warnings).toContainEqual(expect.objectContaining({ code: 'first_page_only', details: { pages } }));
    }
  });

  it('CMYK (TIFF and JPEG) becomes sRGB: white, black, cyan, magenta, yellow land on those colours', async () => {
    for (const name of ['cmyk.tif', 'cmyk.jpg']) {
      const r = await outcome(fixture(name));
      const v = r.volume!;
      expect(v.shape).toEqual([5, 1, 1, 3]);
      expect(v.meta.warnings.map((w) => w.code)).toContain('cmyk_converted');
      const px = (i: number) => [v.data[i]!, v.data[5 + i]!, v.data[10 + i]!];
      const [white, black, cyan, magenta, yellow] = [0, 1, 2, 3, 4].map(px);
      expect(Math.min(...white!)).toBeGreaterThan(220);
      expect(Math.max(...black!)).toBeLessThan(60);
      // the ink's own channel is the dark one: cyan absorbs red, magenta green, yellow blue
      expect(cyan![0]!).toBeLessThan(Math.min(cyan![1]!, cyan![2]!));
      expect(magenta![1]!).toBeLessThan(Math.min(magenta![0]!, magenta![2]!));
      expect(yellow![2]!).toBeLessThan(Math.min(yellow![0]!, yellow![1]!));
    }
  });

  it('alpha is dropped with a warning counting the non-opaque pixels (numpy count as oracle)', async () => {
    const path = requireData(join(SKIMAGE_DATA, 'horse.png'));
    const [rgba] = pilDecode([{ path, convert: 'RGBA' }]);
    let transparent = 0;
    for (let i = 3; i < rgba!.data.length; i += 4) if (rgba!.data[i] !== 255) transparent++;
    expect(transparent).toBeGreaterThan(0);
    const v = (await outcome(sk('horse.png'))).volume!;
    expect(v.shape).toEqual([400, 328, 1, 3]);
    expect(v.meta.warnings).toContainEqual(expect.objectContaining({ code: 'alpha_dropped', details: { transparentPixels: transparent } }));
  });

  it('16-bit stays 16-bit: values above 255 survive', async () => {
    const v = (await outcome(fixture('gray16.png'))).volume!;
    expect(v.dtype).toBe('uint16');
    expect(Math.max(...v.data)).toBeGreaterThan(255);
  });
});
