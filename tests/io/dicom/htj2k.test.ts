/**
 * HTJ2K (1.2.840.10008.1.2.4.201/202) on real codestreams: pydicom's signed 16-bit MR_small slice encoded
 * losslessly by OpenJPH's ojph_compress (Debian openjph-tools) and encapsulated with pydicom
 * (tests/_oracles/dicom_htj2k.py) — one signed frame, the same under the RPCL syntax, four unsigned frames
 * using the full 16-bit range with an offset table, and those four frames each split over three fragments. Lossless, so the oracle is the source: our pixels equal it
 * exactly, and the per-frame geometry and the loaded volume (through the sandbox) equal those of the same
 * dataset stored uncompressed.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import { parseDicom } from '../../../io/dicom/parse.ts';
import { loadInput } from '../../../io/load.ts';
import { PYTHON } from '../../_helpers/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-htj2k-'));
const cases = JSON.parse(execFileSync(PYTHON, [join(import.meta.dirname, '..', '..', '_oracles', 'dicom_htj2k.py'), dir], { encoding: 'utf8' })) as Record<string, { ts: string; frames: number; fragments: number }>;
const limits = resolveLimits();

async function parse(file: string) {
  return parseDicom(new Uint8Array(readFileSync(join(dir, file))), { limits, name: file, index: 0 });
}

describe('HTJ2K encoded by OpenJPH', () => {
  it('the oracle wrote every case with the intended syntax and fragmentation', () => {
    expect(cases).toEqual({
      single: { ts: '1.2.840.10008.1.2.4.201', frames: 1, fragments: 1 },
      rpcl: { ts: '1.2.840.10008.1.2.4.202', frames: 1, fragments: 1 },
      frames4: { ts: '1.2.840.10008.1.2.4.201', frames: 4, fragments: 4 },
      fragments3: { ts: '1.2.840.10008.1.2.4.201', frames: 4, fragments: 12 },
    });
  });

  it.each(['single', 'rpcl', 'frames4', 'fragments3'])('%s: pixels equal the source exactly, geometry equals the uncompressed file', async (name) => {
    const ours = await parse(`${name}.dcm`);
    const native = await parse(`${name}.native.dcm`);
    const orig = new Float64Array(new Uint8Array(readFileSync(join(dir, `${name}.orig.f64`))).buffer);
    expect(ours.transferSyntaxUID).toBe(cases[name]!.ts);
    expect(ours.numberOfFrames).toBe(cases[name]!.frames);
    const multi = cases[name]!.frames > 1;
    expect(ours.pixels).toBeInstanceOf(multi ? Uint16Array : Int16Array);
    expect(ours.pixels.length).toBe(orig.length);
    let diff = 0;
    let high = 0;
    for (let i = 0; i < orig.length; i++) {
      diff = Math.max(diff, Math.abs(ours.pixels[i]! - orig[i]!));
      if (ours.pixels[i]! > 32767) high++;
    }
    expect(diff).toBe(0);
    // the unsigned frames use the top bit, which a signed reading would turn negative
    if (multi) expect(high).toBeGreaterThan(4000);
    expect(ours.frames).toEqual(native.frames);
    expect([ours.rows, ours.columns, ours.bitsStored, ours.pixelRepresentation]).toEqual([native.rows, native.columns, native.bitsStored, native.pixelRepresentation]);
  });

  it('frames4 loads (sandboxed) into the same volume as its uncompressed twin', async () => {
    const [a, b] = await Promise.all([loadInput(join(dir, 'frames4.dcm')), loadInput(join(dir, 'frames4.native.dcm'))]);
    expect(a.volumes).toHaveLength(1);
    const va = a.volumes[0]!;
    const vb = b.volumes[0]!;
    expect(va.shape).toEqual(vb.shape);
    expect(va.affine).toEqual(vb.affine);
    expect(va.spacing).toEqual(vb.spacing);
    expect(Array.from(va.data)).toEqual(Array.from(vb.data));
  });
});
