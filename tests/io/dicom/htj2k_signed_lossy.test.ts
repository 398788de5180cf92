/**
 * HTJ2K beyond the lossless non-negative cases of htj2k.test.ts, on codestreams from OpenJPH's ojph_compress
 * (Debian openjph-tools 0.9.0):
 * - Negative signed samples: pydicom's MR_small minus 1000 (3415 of 4096 values negative). OpenJPH 0.9.0
 *   mis-encodes signed input (aous72/OpenJPH#102), so the values are encoded reversibly as unsigned with
 *   JPEG 2000's DC offset (v + 32768) and the SIZ marker then says signed: the coded coefficients are those
 *   of the signed samples, and a conforming decoder returns them without the offset. OpenJPEG (through
 *   Pillow, which reports signed 16-bit samples shifted by 32768) is the independent oracle; our values
 *   must equal the source and OpenJPEG's exactly. (0.9.0's own ojph_expand clips negative output to 0.)
 * - Lossy (irreversible 9/7, 1.2.840.10008.1.2.4.203): decoders of the irreversible path round differently
 *   (OpenJPH 0.9.0, the OpenJPH in our codec package and OpenJPEG disagree by 1 on a few samples), so our
 *   values must lie within 1 of ojph_expand's at every sample and differ on under 1 % of them, and their
 *   error against the source must not exceed ojph_expand's by more than 1.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import { parseDicom } from '../../../io/dicom/parse.ts';
import { loadInput } from '../../../io/load.ts';
import { pythonJson } from '../../_helpers/python.ts';

const MAKE = `
import json, os, struct, subprocess, sys, warnings
import numpy as np
import pydicom
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import UID, UID_dictionary
warnings.simplefilter('ignore')
# pydicom 2.3 predates the HTJ2K syntaxes (PS3.6 Table A-1 names, as later pydicom versions list them)
for uid, name in [('1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 Image Compression (Lossless Only)'),
                  ('1.2.840.10008.1.2.4.203', 'High-Throughput JPEG 2000 Image Compression')]:
    UID_dictionary.setdefault(uid, (name, 'Transfer Syntax', '', '', ''))
out = sys.argv[1]
src = pydicom.dcmread('/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm')
mr = src.pixel_array.astype(np.int32)
rows, cols = mr.shape

def compress(words, reversible, qstep=None):
    raw, j2c = os.path.join(out, 'in.raw'), os.path.join(out, 'out.j2c')
    np.ascontiguousarray(words, '<u2').tofile(raw)
    args = ['ojph_compress', '-i', raw, '-o', j2c, '-reversible', 'true' if reversible else 'false', '-dims', '{%d,%d}' % (cols, rows),
            '-num_comps', '1', '-signed', 'false', '-bit_depth', '16', '-downsamp', '{1,1}']
    if qstep is not None:
        args += ['-qstep', str(qstep)]
    subprocess.run(args, check=True, capture_output=True)
    data = bytearray(open(j2c, 'rb').read())
    os.remove(raw)
    return data

def expand(data, dtype):
    j2c, raw = os.path.join(out, 'x.j2c'), os.path.join(out, 'x.raw')
    open(j2c, 'wb').write(data)
    subprocess.run(['ojph_expand', '-i', j2c, '-o', raw], check=True, capture_output=True)
    v = np.fromfile(raw, dtype).reshape(rows, cols)
    os.remove(j2c); os.remove(raw)
    return v

def dicom(name, codestream, ts, signed, values):
    ds = pydicom.dcmread('/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm')
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(values, '<i2' if signed else '<u2').tobytes()
    ds.save_as(os.path.join(out, name + '.native.dcm'))
    ds.PixelData = encapsulate([bytes(codestream)], has_bot=True)
    ds['PixelData'].is_undefined_length = True
    ds['PixelData'].VR = 'OB'
    ds.file_meta.TransferSyntaxUID = UID(ts)
    ds.is_implicit_VR, ds.is_little_endian = False, True
    ds.save_as(os.path.join(out, name + '.dcm'))

# negative signed samples: unsigned with the DC offset, then SIZ's Ssiz (depth-1, top bit = signed) says signed
neg = mr - 1000
cs = compress(neg + 32768, True)
siz = cs.find(b'\\xff\\x51')
assert struct.unpack('>H', cs[siz + 38:siz + 40])[0] == 1 and cs[siz + 40] == 0x0f
cs[siz + 40] = 0x8f
open(os.path.join(out, 'neg.j2c'), 'wb').write(cs)
openjpeg = np.array(Image.open(os.path.join(out, 'neg.j2c'))).astype(np.int64) - 32768
dicom('neg', cs, '1.2.840.10008.1.2.4.201', True, neg)

# lossy: irreversible, unsigned source
lossy = compress(mr, False, 0.001)
dicom('lossy', lossy, '1.2.840.10008.1.2.4.203', False, mr)
print(json.dumps({
    'neg': {'source': neg.reshape(-1).tolist(), 'openjpeg': openjpeg.reshape(-1).tolist()},
    'lossy': {'source': mr.reshape(-1).tolist(), 'expand': expand(lossy, '<u2').astype(np.int64).reshape(-1).tolist()},
}))
`;

const limits = resolveLimits();
const dir = mkdtempSync(join(tmpdir(), 'gv-htj2k-signed-'));
let ref: { neg: { source: number[]; openjpeg: number[] }; lossy: { source: number[]; expand: number[] } };

beforeAll(() => {
  ref = pythonJson(MAKE, [dir]);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function parse(file: string) {
  return parseDicom(new Uint8Array(readFileSync(join(dir, file))), { limits, name: file, index: 0 });
}

describe('HTJ2K: negative signed samples and lossy codestreams', () => {
  it('negative samples: our values equal the source and OpenJPEG\'s decode exactly', async () => {
    expect(ref.neg.source.filter((v) => v < 0).length).toBeGreaterThan(3000);
    // the oracle itself reads the codestream as the source
    expect(ref.neg.openjpeg).toEqual(ref.neg.source);
    const ours = await parse('neg.dcm');
    expect(ours.transferSyntaxUID).toBe('1.2.840.10008.1.2.4.201');
    expect(ours.pixels).toBeInstanceOf(Int16Array);
    expect(Array.from(ours.pixels)).toEqual(ref.neg.openjpeg);
  });

  it('negative samples load (sandboxed) into the volume of the uncompressed twin', async () => {
    const [a, b] = await Promise.all([loadInput(join(dir, 'neg.dcm')), loadInput(join(dir, 'neg.native.dcm'))]);
    expect(a.volumes[0]!.shape).toEqual(b.volumes[0]!.shape);
    expect(a.volumes[0]!.affine).toEqual(b.volumes[0]!.affine);
    expect(Array.from(a.volumes[0]!.data)).toEqual(Array.from(b.volumes[0]!.data));
    expect(Math.min(...Array.from(a.volumes[0]!.data))).toBeLessThan(-500);
  });

  it('lossy: within 1 of ojph_expand everywhere, within its error of the source (+1), and really lossy', async () => {
    const ours = await parse('lossy.dcm');
    expect(ours.transferSyntaxUID).toBe('1.2.840.10008.1.2.4.203');
    expect(ours.pixels).toBeInstanceOf(Uint16Array);
    const { source, expand } = ref.lossy;
    expect(ours.pixels.length).toBe(source.length);
    let vsExpand = 0;
    let differing = 0;
    let ourError = 0;
    let expandError = 0;
    for (let i = 0; i < source.length; i++) {
      const d = Math.abs(ours.pixels[i]! - expand[i]!);
      vsExpand = Math.max(vsExpand, d);
      if (d > 0) differing++;
      ourError = Math.max(ourError, Math.abs(ours.pixels[i]! - source[i]!));
      expandError = Math.max(expandError, Math.abs(expand[i]! - source[i]!));
    }
    expect(vsExpand).toBeLessThanOrEqual(1);
    expect(differing).toBeLessThan(source.length / 100);
    expect(expandError).toBeGreaterThan(0);
    expect(ourError).toBeLessThanOrEqual(expandError + 1);
    expect(ourError).toBeGreaterThan(0);
  });
});
