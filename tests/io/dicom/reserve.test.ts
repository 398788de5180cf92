/**
 * The volume reserved from a series' first header (and faulted in while the other headers are read) must
 * be indistinguishable from a fresh allocation: zeros until decoded, exactly the plan's size or not used,
 * never above the voxel limit, and a series loaded into it holds what pydicom reads from the files, also
 * when the guess was wrong (two series in one folder).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLimits, type Limits } from '../../../core/limits.ts';
import { dropReserved, reserveCounters, reserveVolume, RESERVE_MIN_BYTES, takeReserved } from '../../../io/dicom/reserve.ts';
import { loadInputDirect } from '../../../io/load.ts';
import { prefault } from '../../../io/prefault.ts';
import { ORACLES_ON_PATH, runPython } from '../../_helpers/python.ts';

const root = mkdtempSync(join(tmpdir(), 'gv-reserve-'));

// n slices of 512x512 int16 (40 slices: 20 MiB, above RESERVE_MIN_BYTES), written in shuffled file order;
// prints the SHA-256 of each series' slices in position order, as pydicom reads them (rows of columns)
const MAKE = `
import hashlib, os, sys
import numpy as np
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out, series_n, n = sys.argv[1], int(sys.argv[2]), 40
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7 + series_n)
order = rng.permutation(n)
for s in range(series_n):
    series, slices = generate_uid(), []
    for k in range(n):
        ds = axial_slice(series, 1.5 * k, rng.integers(-3000, 3000, size=(512, 512)).astype('<i2'), 0.5, intercept=0)
        ds.save_as(os.path.join(out, f's{s}-{order[k]:03d}.dcm'), write_like_original=False)
        slices.append(ds.PixelData)
    print(hashlib.sha256(b''.join(slices)).hexdigest())
`;

const made: Record<string, { dir: string; sha: string[] }> = {};
beforeAll(() => {
  for (const [name, series] of [['one', 1], ['two', 2]] as const) {
    const dir = join(root, name);
    made[name] = { dir, sha: runPython(MAKE, [dir, String(series)]).trim().split('\n') };
  }
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function sha256(data: ArrayBufferView): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
}

const header = { rows: 512, columns: 512, samplesPerPixel: 1, numberOfFrames: 1, bitsAllocated: 16 };
// 'auto' depends on the machine's load; these tests take the path whatever the load
const always = (o: Partial<Limits> = {}) => resolveLimits({ volumePrefault: 'always', ...o });

describe('prefault', () => {
  it('reaches every byte, in several reads, and leaves zeros', async () => {
    const buf = new Uint8Array(10 * 1024 * 1024 + 123).fill(0xab);
    await prefault(buf, 3 * 1024 * 1024).settled();
    expect(buf.every((b) => b === 0)).toBe(true);
  });

  it('ready(start, end) waits for every read that covers the range', async () => {
    const MiB = 1024 * 1024;
    const buf = new Uint8Array(10 * MiB).fill(0xab);
    const fault = prefault(buf, 3 * MiB);
    // 5-7 MiB spans the second and third reads (3-6 and 6-9 MiB)
    await fault.ready(5 * MiB, 7 * MiB);
    expect(buf.subarray(3 * MiB, 9 * MiB).every((b) => b === 0)).toBe(true);
    await fault.settled();
  });
});

describe('the reserved volume', () => {
  it('is taken by a plan of exactly its size, as zeros, once', async () => {
    reserveVolume(header, 40, always());
    const r = takeReserved('int16', 512 * 512 * 40)!;
    await r.fault.settled();
    const v = r.data;
    expect(v).toBeInstanceOf(Int16Array);
    expect(v.length).toBe(512 * 512 * 40);
    expect(v.buffer.byteLength).toBe(512 * 512 * 40 * 2);
    expect(v.every((x) => x === 0)).toBe(true);
    expect(takeReserved('int16', 512 * 512 * 40)).toBeUndefined();
  });

  it('serves another sample type of the same byte size, and no other size', async () => {
    reserveVolume(header, 40, always());
    expect(takeReserved('uint16', 512 * 512 * 40)?.data).toBeInstanceOf(Uint16Array);
    reserveVolume(header, 40, always());
    expect(takeReserved('int16', 512 * 512 * 39)).toBeUndefined();
    // the wrong guess used it up
    expect(takeReserved('int16', 512 * 512 * 40)).toBeUndefined();
    reserveVolume(header, 40, always());
    dropReserved();
    expect(takeReserved('int16', 512 * 512 * 40)).toBeUndefined();
  });

  it('is not made when told never, above the voxel limit, nor for small volumes', async () => {
    reserveVolume(header, 40, resolveLimits({ volumePrefault: 'never' }));
    expect(takeReserved('int16', 512 * 512 * 40)).toBeUndefined();
    reserveVolume(header, 40, always({ maxVoxelBytes: 512 * 512 * 40 * 2 - 1 }));
    expect(takeReserved('int16', 512 * 512 * 40)).toBeUndefined();
    const small = Math.floor(RESERVE_MIN_BYTES / (512 * 512 * 2)) - 1;
    reserveVolume(header, small, always());
    expect(takeReserved('int16', 512 * 512 * small)).toBeUndefined();
  });

  it('a series loaded into it holds what pydicom reads', async () => {
    const before = reserveCounters.taken;
    const res = await loadInputDirect(made.one!.dir, { sandbox: false, limits: { volumePrefault: 'always' } });
    expect(reserveCounters.taken).toBe(before + 1);
    const v = res.volumes[0]!;
    expect(v.shape).toEqual([512, 512, 40]);
    expect(await sha256(v.data)).toBe(made.one!.sha[0]);
  });

  it('two series in one folder (the first header guessed one series of all files): both as pydicom reads them', async () => {
    const before = reserveCounters.taken;
    const res = await loadInputDirect(made.two!.dir, { sandbox: false, limits: { volumePrefault: 'always' } });
    expect(reserveCounters.taken).toBe(before);
    expect(res.volumes.length).toBe(2);
    const got = await Promise.all(res.volumes.map((v) => sha256(v.data)));
    expect(got.sort()).toEqual([...made.two!.sha].sort());
  });
});
