/**
 * Series whose slices need nothing of the whole volume are never held: each slice goes through one of a few
 * reused buffers into the file. The file must be the NIfTI writer's bytes for the volume that loading gives,
 * also when the ring is smaller than the series (decoding waits for writes to give buffers back), when the
 * slices come from the decoding threads (JPEG-LS), and in falling slice order; the loader must hand over
 * every slice exactly once and hold no voxels, and must not stream what it must resample.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadInputDirect } from '../../io/load.ts';
import { writeNifti } from '../../io/nifti/write.ts';
import type { SliceSink } from '../../io/types.ts';
import { convertInputDirect, ringTuning } from '../../pipelines/convert.ts';
import { ORACLES_ON_PATH, runPython } from '../_helpers/python.ts';

const root = mkdtempSync(join(tmpdir(), 'gv-convert-ring-'));
const N = 24;
const ROWS = 40;
const COLS = 36;
const SLICE_BYTES = ROWS * COLS * 2;

// N slices of 16-bit values with BitsStored `bits` and junk in the unused high bits (which the reader must
// mask), file names in shuffled order; `step` < 0 stores the positions falling; `skip` leaves one slice out;
// a modality LUT when `intercept` is a number
const MAKE = `
import os, sys
import numpy as np
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out, step, skip, signed, bits, intercept, slope, span = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], float(sys.argv[7]), int(sys.argv[8])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
series = generate_uid()
order = rng.permutation(${N})
lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2 ** bits)
if span:
    lo, hi = max(lo, -span), min(hi, span)
for k in range(${N}):
    if k == skip:
        continue
    v = rng.integers(lo, hi, size=(${ROWS}, ${COLS}))
    px = ((v & (2 ** bits - 1)) | (rng.integers(0, 2 ** (16 - bits), size=v.shape) << bits)).astype('<u2')
    ds = axial_slice(series, step * k, px, 0.8, modality='CT' if intercept != 'none' else 'MR', bits_stored=bits, signed=signed,
                     intercept=None if intercept == 'none' else float(intercept))
    if intercept != 'none':
        ds.RescaleSlope = slope
    ds.save_as(os.path.join(out, f'f{order[k]:03d}.dcm'), write_like_original=False)
`;

function make(name: string, step: number, o: { skip?: number; signed?: 0 | 1; bits?: number; intercept?: number; slope?: number; span?: number } = {}): string {
  const dir = join(root, name);
  runPython(MAKE, [dir, String(step), String(o.skip ?? -1), String(o.signed ?? 0), String(o.bits ?? 12), o.intercept === undefined ? 'none' : String(o.intercept), String(o.slope ?? 1), String(o.span ?? 0)]);
  return dir;
}

let dirs: Record<string, string>;
beforeAll(() => {
  dirs = {
    rising: make('rising', 1.5),
    falling: make('falling', -1.5),
    gap: make('gap', 1.5, { skip: 9 }),
    // CT: what the loader makes of the modality LUT is decided by the headers alone (the first three) or by the values
    ctSigned12: make('ct-s12', 1.5, { signed: 1, bits: 12, intercept: -1024 }),
    ctUnsigned12: make('ct-u12', 1.5, { signed: 0, bits: 12, intercept: -1024 }),
    slope: make('slope', 1.5, { signed: 1, bits: 12, intercept: 3.5, slope: 0.25 }),
    // 16 bits stored: int16 + -1024 may overflow, but these values (±3000) do not
    ctSigned16: make('ct-s16', 1.5, { signed: 1, bits: 16, intercept: -1024, span: 3000 }),
  };
  // the same series as JPEG-LS: enough frames for the decoding threads
  const ls = join(root, 'jpegls');
  execFileSync('mkdir', ['-p', ls]);
  for (const f of readdirSync(dirs.rising!)) execFileSync('dcmcjpls', [join(dirs.rising!, f), join(ls, f)]);
  dirs.jpegls = ls;
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));
const defaultRing = ringTuning.bytes;
afterEach(() => {
  ringTuning.bytes = defaultRing;
});

async function expected(dir: string): Promise<Buffer> {
  const res = await loadInputDirect(dir, { sandbox: false });
  return Buffer.from(writeNifti(res.volumes[0]!));
}

async function convert(dir: string, name: string): Promise<Buffer> {
  const out = join(root, 'out', `${name}.nii`);
  await convertInputDirect(dir, { kind: 'file', path: out, format: 'nii' }, { sandbox: false });
  expect(readdirSync(join(root, 'out')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  return readFileSync(out);
}

/** A sink that keeps what the stream hands it, writing nothing, and lends at most `slots` buffers at once. */
function recordingSink(slots: number) {
  const kept = new Map<number, Uint8Array>();
  let lent = 0;
  let most = 0;
  let began = 0;
  let size = 0;
  const waiting: (() => void)[] = [];
  const sink: SliceSink = {
    placed: () => {
      throw new Error('placed() must not be called for a streamed volume');
    },
    invalidated: () => undefined,
    stream: {
      begin: async (sliceBytes) => {
        began++;
        size = sliceBytes;
        return true;
      },
      slot: async () => {
        while (lent >= slots) await new Promise<void>((r) => waiting.push(r));
        lent++;
        most = Math.max(most, lent);
        return new Uint8Array(size);
      },
      kept: (slot, k) => {
        expect(kept.has(k)).toBe(false);
        kept.set(k, slot.slice());
        // "written" a moment later
        setTimeout(() => {
          lent--;
          waiting.shift()?.();
        }, 1);
      },
      drop: () => {
        lent--;
        waiting.shift()?.();
      },
    },
  };
  return { sink, kept, stats: () => ({ most, began }) };
}

describe('convert to .nii through a ring of slice buffers', () => {
  it('the loader hands every slice over once, in slots of its own, and returns a volume without voxels', async () => {
    const whole = (await loadInputDirect(dirs.rising!, { sandbox: false })).volumes[0]!;
    const { sink, kept, stats } = recordingSink(3);
    const res = await loadInputDirect(dirs.rising!, { sandbox: false, slices: sink });
    const v = res.volumes[0]!;
    expect(v.data.length).toBe(0);
    expect(v.shape).toEqual(whole.shape);
    expect(v.affine).toEqual(whole.affine);
    expect(v.dtype).toBe(whole.dtype);
    expect(stats().began).toBe(1);
    expect(stats().most).toBeLessThanOrEqual(3);
    expect([...kept.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, k) => k));
    const bytes = new Uint8Array(whole.data.buffer, whole.data.byteOffset, whole.data.byteLength);
    for (const [k, slot] of kept) expect(Buffer.from(slot).equals(Buffer.from(bytes.subarray(k * SLICE_BYTES, (k + 1) * SLICE_BYTES)))).toBe(true);
    // the junk above BitsStored was masked in the slots too
    expect(Math.max(...Array.from(new Uint16Array(kept.get(5)!.buffer)))).toBeLessThan(4096);
  });

  it.each([
    ['ctSigned12', 'int16', undefined, true],
    ['ctUnsigned12', 'int32', undefined, true],
    ['slope', 'int16', { slope: 0.25, intercept: 3.5 }, true],
    ['ctSigned16', 'int16', undefined, false],
  ] as const)('%s: output type %s, LUT carried %o, streamed %s (only when the headers decide the LUT\'s outcome); the same file as the writer\'s', async (name, dtype, rescale, streamed) => {
    const whole = (await loadInputDirect(dirs[name]!, { sandbox: false })).volumes[0]!;
    expect(whole.dtype).toBe(dtype);
    expect(whole.meta.rescale).toEqual(rescale);
    const { sink, stats } = recordingSink(3);
    sink.placed = () => undefined;
    const v = (await loadInputDirect(dirs[name]!, { sandbox: false, slices: sink })).volumes[0]!;
    expect(stats().began).toBe(streamed ? 1 : 0);
    expect(v.data.length).toBe(streamed ? 0 : whole.data.length);
    expect(v.dtype).toBe(dtype);
    expect(v.meta.rescale).toEqual(rescale);
    ringTuning.bytes = 3 * SLICE_BYTES;
    const file = await convert(dirs[name]!, name);
    expect(file.equals(Buffer.from(writeNifti(whole)))).toBe(true);
  });

  it('a stack that is to be resampled keeps its voxels and is not streamed', async () => {
    const { sink, stats } = recordingSink(3);
    sink.placed = () => undefined;
    const res = await loadInputDirect(dirs.gap!, { sandbox: false, slices: sink, resample: true });
    expect(res.volumes[0]!.data.length).toBeGreaterThan(0);
    expect(res.volumes[0]!.meta.warnings.some((w) => w.code === 'resampled')).toBe(true);
    expect(stats().began).toBe(0);
  });

  it('a ring of three slices: the file equals the writer\'s bytes for the loaded volume', async () => {
    ringTuning.bytes = 3 * SLICE_BYTES;
    const file = await convert(dirs.rising!, 'rising');
    expect(file.length).toBe(352 + N * SLICE_BYTES);
    expect(file.equals(await expected(dirs.rising!))).toBe(true);
  });

  it('falling slice positions, a ring smaller than a write: the same bytes as the writer', async () => {
    ringTuning.bytes = 2 * SLICE_BYTES;
    const file = await convert(dirs.falling!, 'falling');
    expect(file.equals(await expected(dirs.falling!))).toBe(true);
  });

  it('a missing slice, not resampled: the acquired slices as the writer writes them', async () => {
    ringTuning.bytes = 4 * SLICE_BYTES;
    const file = await convert(dirs.gap!, 'gap');
    expect(file.length).toBe(352 + (N - 1) * SLICE_BYTES);
    expect(file.equals(await expected(dirs.gap!))).toBe(true);
  });

  it('JPEG-LS frames from the decoding threads through a small ring: the same bytes as the uncompressed series', async () => {
    ringTuning.bytes = 3 * SLICE_BYTES;
    const file = await convert(dirs.jpegls!, 'jpegls');
    expect(file.equals(await expected(dirs.rising!))).toBe(true);
  });
});
