/** readImage against PIL/numpy: exact pixels, dtype, geometry, EXIF orientation, warnings. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import { readImage } from '../../../io/image/read.ts';
import type { Volume } from '../../../io/volume.ts';
import { requireData, SKIMAGE_DATA } from '../../_helpers/testdata.ts';
import { expectSamePixels, pilDecode, toRowMajor, type PilOptions } from './pil_oracle.ts';
import { fixture, imageFixtures, removeImageFixtures } from './fixtures.ts';

const ctx = { limits: resolveLimits() };
afterAll(removeImageFixtures);
const sk = (f: string) => requireData(join(SKIMAGE_DATA, f));

async function read(path: string): Promise<Volume> {
  return readImage(new Uint8Array(readFileSync(path)), ctx, 'case');
}

/** Files checked sample-for-sample against numpy.asarray(PIL.Image.open(f)) (converted where PIL keeps indices). */
const PARITY: { file: () => string; label: string; pil?: PilOptions; dtype: 'uint8' | 'uint16' }[] = [
  { label: 'camera.png (gray 8-bit)', file: () => sk('camera.png'), dtype: 'uint8' },
  { label: 'astronaut.png (RGB 8-bit)', file: () => sk('astronaut.png'), dtype: 'uint8' },
  { label: 'coins.png (gray, odd width)', file: () => sk('coins.png'), dtype: 'uint8' },
  { label: 'chelsea.png (RGB, odd width)', file: () => sk('chelsea.png'), dtype: 'uint8' },
  { label: 'chessboard_GRAY_U16.tif (16-bit LE TIFF)', file: () => sk('chessboard_GRAY_U16.tif'), dtype: 'uint16' },
  { label: 'chessboard_GRAY_U16B.tif (16-bit BE TIFF)', file: () => sk('chessboard_GRAY_U16B.tif'), dtype: 'uint16' },
  { label: 'palette_color.png (palette)', file: () => sk('palette_color.png'), pil: { convert: 'RGB' }, dtype: 'uint8' },
  { label: 'checker_bilevel.png (1-bit)', file: () => sk('checker_bilevel.png'), pil: { convert: 'L' }, dtype: 'uint8' },
  { label: 'horse.png (RGBA, alpha dropped)', file: () => sk('horse.png'), pil: { convert: 'RGB' }, dtype: 'uint8' },
  { label: 'hubble_deep_field.jpg (JPEG)', file: () => sk('hubble_deep_field.jpg'), dtype: 'uint8' },
  { label: 'rocket.jpg (JPEG)', file: () => sk('rocket.jpg'), dtype: 'uint8' },
  { label: 'multipage.tif (first page)', file: () => sk('multipage.tif'), dtype: 'uint8' },
  { label: 'gray16.png (PIL-written 16-bit PNG)', file: () => join(imageFixtures(), 'gray16.png'), dtype: 'uint16' },
  { label: 'la.png (gray + alpha)', file: () => join(imageFixtures(), 'la.png'), pil: { convert: 'L' }, dtype: 'uint8' },
  { label: 'anim.webp (first frame)', file: () => join(imageFixtures(), 'anim.webp'), dtype: 'uint8' },
  { label: 'rgb.tif (RGB TIFF)', file: () => join(imageFixtures(), 'rgb.tif'), dtype: 'uint8' },
];

describe('readImage: pixels equal PIL', () => {
  let oracle: ReturnType<typeof pilDecode>;
  beforeAll(() => {
    oracle = pilDecode(PARITY.map((c) => ({ path: c.file(), ...c.pil })));
  });

  it.each(PARITY.map((c, i) => [c.label, i] as const))('%s', async (_label, i) => {
    const c = PARITY[i]!;
    const v = await read(c.file());
    expect(v.dtype).toBe(c.dtype);
    expect(v.data).toBeInstanceOf(c.dtype === 'uint16' ? Uint16Array : Uint8Array);
    expectSamePixels(v, oracle[i]!);
  });

  it('16-bit RGB PNG keeps all 16 bits (expected: the numpy array the file was encoded from)', async () => {
    const v = await read(join(imageFixtures(), 'rgb16.png'));
    const expected = new Uint16Array(new Uint8Array(fixture('rgb16.bin')).buffer);
    expect(v.dtype).toBe('uint16');
    expect(v.shape).toEqual([4, 6, 1, 3]);
    expect(toRowMajor(v).data).toEqual(Array.from(expected));
    // PIL reads this file as 8-bit RGB: its samples are the high bytes, which proves the fixture is a real PNG.
    const [pil] = pilDecode([{ path: join(imageFixtures(), 'rgb16.png') }]);
    expect(Array.from(pil!.data)).toEqual(Array.from(expected, (x) => x >> 8));
  });
});

describe('readImage: geometry', () => {
  it('gray: shape [w, h, 1], x = column, y = row from the top, LPS affine diag(-1,-1,1), zero origin', async () => {
    const v = await read(sk('camera.png'));
    const [pil] = pilDecode([{ path: sk('camera.png') }]);
    expect(v.shape).toEqual([512, 512, 1]);
    // voxel (x=17, y=3) is numpy [row 3, column 17]
    expect(v.data[3 * 512 + 17]).toBe(pil!.data[3 * 512 + 17]);
    expect(v.affine).toEqual([
      [-1, 0, 0, 0],
      [0, -1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ]);
    expect(v.spacing).toEqual([1, 1, 1]);
    expect(v.meta).toMatchObject({ format: 'image', components: 'scalar', orientation: 'LPS' });
  });

  it('RGB: shape [w, h, 1, 3] with planar components, non-square', async () => {
    const v = await read(sk('chelsea.png'));
    expect(v.shape).toEqual([451, 300, 1, 3]);
    expect(v.spacing).toHaveLength(4);
    expect(v.meta.components).toBe('rgb');
    expect(v.data.length).toBe(451 * 300 * 3);
  });

  it('spacing from a density stated in physical units (PIL reports such a dpi); 1 when none or unit-less', async () => {
    const files = { astronaut: sk('astronaut.png'), coffee: sk('coffee.png'), jpeg300: join(imageFixtures(), 'dpi300.jpg'), moon: sk('moon.png'), coins: sk('coins.png') };
    const [astro, coffee, jpeg300, moon, coins] = pilDecode(Object.values(files).map((path) => ({ path })));
    const s = async (f: string) => (await read(f)).spacing;
    // PIL gives a dpi only for pHYs in metres / JFIF in inches: 11811 ppm, 3780 ppm, 300 dpi
    expect((await s(files.astronaut))[0]).toBeCloseTo(25.4 / astro!.dpi![0]!, 9);
    expect((await s(files.coffee))[1]).toBeCloseTo(25.4 / coffee!.dpi![1]!, 9);
    expect((await s(files.jpeg300))[0]).toBeCloseTo(25.4 / jpeg300!.dpi![0]!, 9);
    const j = await read(files.jpeg300);
    expect(j.affine[0]![0]).toBeCloseTo(-25.4 / 300, 12);
    expect(j.affine[1]![1]).toBeCloseTo(-25.4 / 300, 12);
    // moon.png has a unit-less (aspect-only) pHYs and coins.png none: PIL reports no dpi, and we use 1
    expect([moon!.dpi, coins!.dpi]).toEqual([null, null]);
    expect(await s(files.moon)).toEqual([1, 1, 1]);
    expect(await s(files.coins)).toEqual([1, 1, 1]);
  });

  it('anisotropic pHYs: x spacing from the horizontal density, y from the vertical one', async () => {
    const path = join(imageFixtures(), 'aniso.png');
    const [pil] = pilDecode([{ path }]);
    const v = await read(path);
    expect(v.spacing[0]).toBeCloseTo(25.4 / pil!.dpi![0]!, 9);
    expect(v.spacing[1]).toBeCloseTo(25.4 / pil!.dpi![1]!, 9);
    expect(v.spacing[0]).not.toBeCloseTo(v.spacing[1]!, 3);
    expect([v.affine[0]![0], v.affine[1]![1]]).toEqual([-v.spacing[0]!, -v.spacing[1]!]);
  });
});

describe('readImage: EXIF orientation', () => {
  const cases = [1, 2, 3, 4, 5, 6, 7, 8];
  let oracle: ReturnType<typeof pilDecode>;
  beforeAll(() => {
    oracle = pilDecode(cases.map((o) => ({ path: join(imageFixtures(), `exif${o}.jpg`), exif: true })));
  });

  it.each(cases.map((o, i) => [o, i] as const))('orientation %i comes out as PIL exif_transpose does', async (o, i) => {
    const v = await read(join(imageFixtures(), `exif${o}.jpg`));
    expectSamePixels(v, oracle[i]!);
    const w = v.meta.warnings.find((x) => x.code === 'exif_orientation');
    if (o === 1) expect(w).toBeUndefined();
    else {
      expect(w?.details).toEqual({ orientation: o });
      expect(w?.message).toContain(`orientation ${o}`);
    }
  });

  it('orientation 6 swaps width and height (13x9 stored → 9x13)', async () => {
    const v = await read(join(imageFixtures(), 'exif6.jpg'));
    expect(v.shape).toEqual([9, 13, 1, 3]);
    expect(v.meta.warnings.find((x) => x.code === 'exif_orientation')?.message).toMatch(/90° clockwise/);
  });
});
