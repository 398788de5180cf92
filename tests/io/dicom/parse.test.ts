/**
 * Header attributes and per-frame geometry against pydicom (tests/_oracles/dicom_header.py): classic
 * single/multi-frame objects in every byte order, a deflated and a VR-mismatched file, and Philips
 * enhanced multi-frame MR (176 frames of per-frame functional groups, from nibabel's test data). Also
 * reading a header from the head of a file only, as series assembly does.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { parseDicom, parseDicomHeader } from '../../../io/dicom/parse.ts';
import { NIBABEL_NICOM, PYDICOM_FILES, requireData } from '../../_helpers/testdata.ts';
import { PYTHON } from '../../_helpers/python.ts';
import { execFileSync } from 'node:child_process';

const P = (n: string) => join(PYDICOM_FILES, n);
const N = (n: string) => join(NIBABEL_NICOM, n);
const FILES = [
  P('CT_small.dcm'),
  P('MR_small.dcm'),
  P('MR_small_implicit.dcm'),
  P('MR_small_bigendian.dcm'),
  P('MR_small_expb.dcm'),
  P('rtdose.dcm'),
  P('rtdose_expb.dcm'),
  P('image_dfl.dcm'),
  P('SC_rgb_jpeg.dcm'),
  P('liver_1frame.dcm'),
  P('JPEG2000.dcm'),
  P('dicomdirtests/77654033/CT2/17106'),
  P('dicomdirtests/98892003/MR2/4950'),
  N('0.dcm'),
  N('decimal_rescale.dcm'),
  N('slicethickness_empty_string.dcm'),
  N('philips_mprage.dcm.gz'),
].map(requireData);

interface OracleFrame {
  position: number[] | null;
  orientation: number[] | null;
  pixelSpacing: number[] | null;
  slope: number;
  intercept: number;
  window: [number, number] | null;
  dimensionIndex?: number[];
  temporalPositionIndex?: number;
}
type Oracle = Record<string, Record<string, unknown> & { frames: OracleFrame[] }>;

const oracle = JSON.parse(execFileSync(PYTHON, [join(import.meta.dirname, '..', '..', '_oracles', 'dicom_header.py'), ...FILES], { encoding: 'utf8', maxBuffer: 1 << 28 })) as Oracle;
const limits = resolveLimits();
const bytesOf = (f: string) => new Uint8Array(f.endsWith('.gz') ? gunzipSync(readFileSync(f)) : readFileSync(f));

describe('DICOM header vs pydicom', () => {
  it.each(FILES)('%s', (file) => {
    const want = oracle[file]!;
    const h = parseDicomHeader(bytesOf(file), { limits, name: 'f', index: 3 });
    expect(h.sourceIndex).toBe(3);
    for (const key of ['transferSyntaxUID', 'sopClassUID', 'sopInstanceUID', 'studyInstanceUID', 'seriesInstanceUID', 'frameOfReferenceUID', 'modality', 'instanceNumber', 'seriesNumber', 'acquisitionNumber', 'echoNumber', 'gantryTilt', 'rows', 'columns', 'numberOfFrames', 'samplesPerPixel', 'photometric', 'bitsAllocated', 'bitsStored', 'pixelRepresentation']) {
      expect((h as unknown as Record<string, unknown>)[key] ?? null, key).toEqual(want[key]);
    }
    expect(h.frames).toHaveLength(want.frames.length);
    h.frames.forEach((f, i) => {
      const w = want.frames[i]!;
      expect(f.position ?? null, `frame ${i} position`).toEqual(w.position);
      expect(f.orientation ?? null, `frame ${i} orientation`).toEqual(w.orientation);
      expect(f.pixelSpacing ?? null, `frame ${i} spacing`).toEqual(w.pixelSpacing);
      expect(f.rescale, `frame ${i} rescale`).toEqual({ slope: w.slope, intercept: w.intercept });
      expect(f.window ? [f.window.center, f.window.width] : null, `frame ${i} window`).toEqual(w.window);
      expect(f.dimensionIndex, `frame ${i} dimension index`).toEqual(w.dimensionIndex);
      expect(f.temporalPositionIndex, `frame ${i} temporal index`).toEqual(w.temporalPositionIndex);
    });
  });

  it('a file whose body is implicit VR under an explicit transfer syntax is read as encoded, with a warning', () => {
    const h = parseDicomHeader(bytesOf(P('SC_rgb_jpeg.dcm')), { limits, name: 'f', index: 0 });
    expect(h.warnings.map((w) => w.code)).toContain('vr_mismatch');
  });

  it('MONOCHROME1 keeps stored values and says so', async () => {
    const src = bytesOf(P('CT_small.dcm'));
    const at = Buffer.from(src).indexOf('MONOCHROME2');
    const m1 = new Uint8Array(src);
    m1.set(new TextEncoder().encode('MONOCHROME1'), at);
    const a = await parseDicom(src, { limits, name: 'a', index: 0 });
    const b = await parseDicom(m1, { limits, name: 'b', index: 0 });
    expect(b.photometric).toBe('MONOCHROME1');
    expect(b.warnings.map((w) => w.code)).toContain('monochrome1');
    expect(Array.from(b.pixels)).toEqual(Array.from(a.pixels));
  });
});

describe('DICOM header from the head of a file', () => {
  it.each([P('CT_small.dcm'), P('MR_small_implicit.dcm'), P('JPEG2000.dcm'), P('MR_small_RLE.dcm'), N('philips_mprage.dcm.gz')])('%s: a head holding the header gives the same header', (file) => {
    const bytes = bytesOf(file);
    const full = parseDicomHeader(bytes, { limits, name: 'f', index: 0 });
    const pixelAt = Buffer.from(bytes).lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
    expect(pixelAt).toBeGreaterThan(132);
    const head = bytes.subarray(0, pixelAt + 16);
    expect(head.length).toBeLessThan(bytes.length);
    expect(parseDicomHeader(head, { limits, name: 'f', index: 0, fileSize: bytes.length })).toEqual(full);
  });

  it('a head that ends before PixelData is refused (the caller then reads the whole file)', () => {
    const bytes = bytesOf(P('CT_small.dcm'));
    try {
      parseDicomHeader(bytes.subarray(0, 600), { limits, name: 'f', index: 0, fileSize: bytes.length });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(GatedError);
      expect((e as GatedError).code).toBe('truncated');
    }
  });
});
