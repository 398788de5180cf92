/**
 * Codecs on files DCMTK encodes at test time (tests/_oracles/dicom_codecs.py), single- and multi-frame,
 * signed 16-bit CT and unsigned 12-bit MR: JPEG lossless (process 14, SV1 and SV6/SV4), JPEG-LS lossless,
 * RLE — equal to DCMTK's decode and to the source; JPEG-LS near-lossless (NEAR=3) — equal to DCMTK's
 * decode and within NEAR of the source; 12-bit lossy JPEG (process 4) — equal to DCMTK's decode.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import { parseDicom } from '../../../io/dicom/parse.ts';
import { decodeFrame } from '../../../io/dicom/codecs.ts';
import { loadInput } from '../../../io/load.ts';
import { GatedError } from '../../../core/errors.ts';
import { PYTHON } from '../../_helpers/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-codecs-'));
const cases = JSON.parse(execFileSync(PYTHON, [join(import.meta.dirname, '..', '..', '_oracles', 'dicom_codecs.py'), dir], { encoding: 'utf8' })) as Record<string, { ts: string; frames: number } | { error: string }>;
const limits = resolveLimits();
const f64 = (p: string) => new Float64Array(new Uint8Array(readFileSync(p)).buffer);

async function decode(name: string): Promise<ArrayLike<number>> {
  return (await parseDicom(new Uint8Array(readFileSync(join(dir, `${name}.dcm`))), { limits, name, index: 0 })).pixels as ArrayLike<number>;
}

/** The first frame's codestream (one fragment per frame, as DCMTK writes it), read by pydicom. */
async function firstFragment(name: string): Promise<Uint8Array> {
  const hex = execFileSync(PYTHON, ['-c', 'import sys,pydicom; from pydicom.encaps import generate_pixel_data_frame as g; print(next(g(pydicom.dcmread(sys.argv[1]).PixelData)).hex())', join(dir, `${name}.dcm`)], { encoding: 'utf8' });
  return new Uint8Array(Buffer.from(hex.trim(), 'hex'));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('encapsulated pixel data made by DCMTK', () => {
  it('every case was encoded', () => {
    for (const [name, c] of Object.entries(cases)) expect('error' in c ? c.error : '', name).toBe('');
  });

  it.each(['ct_sv1', 'ct_p14_sv6', 'mf_sv1', 'mf_p14_sv4', 'mf_jls', 'mf_rle'])('%s: lossless, equal to DCMTK and to the source', async (name) => {
    const ours = await decode(name);
    expect(maxDiff(ours, f64(join(dir, `${name}.dcmtk.f64`)))).toBe(0);
    expect(maxDiff(ours, f64(join(dir, `${name}.orig.f64`)))).toBe(0);
  });

  it('mf_jls_near3: near-lossless, equal to DCMTK and within NEAR=3 of the source', async () => {
    const ours = await decode('mf_jls_near3');
    expect(maxDiff(ours, f64(join(dir, 'mf_jls_near3.dcmtk.f64')))).toBe(0);
    const d = maxDiff(ours, f64(join(dir, 'mf_jls_near3.orig.f64')));
    expect(d).toBeGreaterThan(0); // really lossy, so the check above is not vacuous
    expect(d).toBeLessThanOrEqual(3);
  });

  it('mf_extended12: 12-bit lossy JPEG equals DCMTK\'s decode of the same codestream exactly, and is really lossy', async () => {
    const ours = await decode('mf_extended12');
    expect(ours).toBeInstanceOf(Uint16Array);
    expect(maxDiff(ours, f64(join(dir, 'mf_extended12.dcmtk.f64')))).toBe(0);
    const d = maxDiff(ours, f64(join(dir, 'mf_extended12.orig.f64')));
    expect(d).toBeGreaterThan(0);
    // DCMTK's default quality keeps a 12-bit MR within a few percent of its range
    expect(d).toBeLessThan(200);
  });

  it('mf_extended12 decodes the same inside the decoding sandbox', async () => {
    const { volumes } = await loadInput(join(dir, 'mf_extended12.dcm'));
    expect(volumes).toHaveLength(1);
    expect(maxDiff(volumes[0]!.data, f64(join(dir, 'mf_extended12.dcmtk.f64')))).toBe(0);
  });

  it('a broken 12-bit codestream is a typed decode_failed, and a size that disagrees with the header is bad_geometry', async () => {
    const spec = { rows: 16, columns: 16, samplesPerPixel: 1, bitsAllocated: 16, pixelRepresentation: 0 as const, photometric: 'MONOCHROME2' };
    // SOI, an extended (SOF1) frame header with 12-bit precision, then no scan
    const broken = new Uint8Array([0xff, 0xd8, 0xff, 0xc1, 0x00, 0x0b, 12, 0x00, 0x10, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00, ...new Array<number>(200).fill(0x55), 0xff, 0xd9]);
    const e1 = await decodeFrame('jpeg', broken, spec).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(GatedError);
    expect((e1 as GatedError).code).toBe('decode_failed');
    const frame = await firstFragment('mf_extended12');
    const e2 = await decodeFrame('jpeg', frame, { ...spec, rows: 255, columns: 256 }).catch((e: unknown) => e);
    expect((e2 as GatedError).code).toBe('bad_geometry');
    const good = await decodeFrame('jpeg', frame, { ...spec, rows: 256, columns: 256 });
    expect(good.length).toBe(256 * 256 * 2);
  });
});
