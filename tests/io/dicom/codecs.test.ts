/**
 * Codecs on files DCMTK encodes at test time (tests/_oracles/dicom_codecs.py), single- and multi-frame,
 * signed 16-bit CT and unsigned 12-bit MR: JPEG lossless (process 14, SV1 and SV6/SV4), JPEG-LS lossless,
 * RLE — equal to DCMTK's decode and to the source; JPEG-LS near-lossless (NEAR=3) — equal to DCMTK's
 * decode and within NEAR of the source; 12-bit lossy JPEG — refused with the transfer syntax named.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { parseDicom } from '../../../io/dicom/parse.ts';
import { PYTHON } from '../../_helpers/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-codecs-'));
const cases = JSON.parse(execFileSync(PYTHON, [join(import.meta.dirname, '..', '..', '_oracles', 'dicom_codecs.py'), dir], { encoding: 'utf8' })) as Record<string, { ts: string; frames: number } | { error: string }>;
const limits = resolveLimits();
const f64 = (p: string) => new Float64Array(new Uint8Array(readFileSync(p)).buffer);

async function decode(name: string): Promise<ArrayLike<number>> {
  return (await parseDicom(new Uint8Array(readFileSync(join(dir, `${name}.dcm`))), { limits, name, index: 0 })).pixels as ArrayLike<number>;
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

  it('mf_extended12: 12-bit lossy JPEG is refused, naming the transfer syntax (DCMTK decodes it)', async () => {
    expect(f64(join(dir, 'mf_extended12.dcmtk.f64')).length).toBe(4 * 256 * 256);
    const err = await decode('mf_extended12').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatedError);
    expect((err as GatedError).code).toBe('unsupported_transfer_syntax');
    expect((err as GatedError).message).toContain('1.2.840.10008.1.2.4.51');
  });
});
