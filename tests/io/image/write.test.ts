/**
 * writePng read back by PIL (and, for 16-bit RGB, which PIL truncates to 8 bits, by a stdlib zlib decoder):
 * expected samples are computed by numpy from the same source array (clip, round half up, window).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits } from '../../../core/limits.ts';
import { readImage } from '../../../io/image/read.ts';
import { writePng } from '../../../io/image/write.ts';
import { LPS_TO_RAS } from '../../../io/geometry.ts';
import { allocate, type DType, type Volume, type VolumeMeta } from '../../../io/volume.ts';
import { runPython } from '../../_helpers/python.ts';

const CHECK = String.raw`
import sys, json, zlib, struct
import numpy as np
from PIL import Image

def png16_rgb(path):
    # PIL reads 16-bit RGB as 8-bit, so decode IHDR/IDAT here (no interlace), undoing the five PNG filters.
    b = open(path, 'rb').read(); i = 8; idat = b''
    while i < len(b):
        n, t = struct.unpack('>I4s', b[i:i + 8]); d = b[i + 8:i + 8 + n]
        if t == b'IHDR': w, h, depth, ct, _, _, lace = struct.unpack('>IIBBBBB', d)
        if t == b'IDAT': idat += d
        i += 12 + n
    assert depth == 16 and ct == 2 and lace == 0
    bpp = 6; stride = w * bpp; raw = zlib.decompress(idat); prev = bytearray(stride); rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0; up = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + up) & 255
            elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    return np.frombuffer(b''.join(rows), dtype='>u2').reshape(h, w, 3), 16

out = []
for job in json.loads(sys.stdin.read()):
    src = np.frombuffer(open(job['bin'], 'rb').read(), dtype=job['dtype']).reshape(job['shape']).astype(np.float64)
    src = src * job.get('slope', 1) + job.get('inter', 0)
    k = job['slice']
    plane = src[:, k] if job['rgb'] else src[k]          # numpy order (c, z, y, x) or (z, y, x)
    if job['rgb']: plane = np.moveaxis(plane, 0, -1)      # -> (y, x, c) like PIL
    mx = 2 ** job['bits'] - 1
    if job.get('window'):
        lo, hi = job['window']; plane = (plane - lo) / (hi - lo) * mx
    expected = np.clip(np.floor(plane + 0.5), 0, mx)
    if job['rgb'] and job['bits'] == 16:
        got, bits = png16_rgb(job['png']); mode = 'RGB;16'
    else:
        im = Image.open(job['png']); mode = im.mode; got = np.asarray(im)
        bits = 16 if mode.startswith('I') else 8
    out.append({'mode': mode, 'bits': bits, 'shape': list(got.shape),
                'bad': int(np.count_nonzero(got.astype(np.float64) != expected))})
print(json.dumps(out))
`;

interface Job {
  png: string;
  bin: string;
  dtype: string;
  shape: number[];
  slice: number;
  rgb: boolean;
  bits: 8 | 16;
  slope?: number;
  inter?: number;
  window?: [number, number];
}

const NUMPY_DTYPE: Record<DType, string> = { uint8: '<u1', int8: '<i1', uint16: '<u2', int16: '<i2', uint32: '<u4', int32: '<i4', float32: '<f4', float64: '<f8' };

let dir: string;
let seed = 12345;
/** Deterministic samples spread over [lo, hi] (a plain LCG: the values only need to be varied). */
function fill(dtype: DType, n: number, lo: number, hi: number): Volume['data'] {
  const data = allocate(dtype, n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const u = seed / 2 ** 32;
    data[i] = dtype.startsWith('float') ? lo + u * (hi - lo) : Math.floor(lo + u * (hi - lo + 1));
  }
  return data;
}

function volume(dtype: DType, shape: number[], data: Volume['data'], meta: Partial<VolumeMeta> = {}): Volume {
  return { data, shape, spacing: shape.map(() => 1), affine: LPS_TO_RAS.map((r) => [...r]), dtype, meta: { format: 'image', components: 'scalar', warnings: [], ...meta } };
}

/** Writes the PNG and the source array for the oracle; the numpy shape is the reverse of ours. */
async function job(name: string, v: Volume, opts: Parameters<typeof writePng>[1], bits: 8 | 16): Promise<Job> {
  const png = join(dir, `${name}.png`);
  const bin = join(dir, `${name}.bin`);
  writeFileSync(png, await writePng(v, opts));
  writeFileSync(bin, new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength));
  const rgb = v.meta.components === 'rgb';
  const [nx, ny, nz = 1] = v.shape;
  return {
    png,
    bin,
    dtype: NUMPY_DTYPE[v.dtype],
    shape: rgb ? [3, nz, ny!, nx!] : [nz, ny!, nx!],
    slice: opts?.slice ?? Math.floor(nz / 2),
    rgb,
    bits,
    ...(v.meta.rescale ? { slope: v.meta.rescale.slope, inter: v.meta.rescale.intercept } : {}),
    ...(opts?.window ? { window: opts.window } : {}),
  };
}

describe('writePng read back by PIL', () => {
  const cases: { label: string; make: () => Promise<Job>; mode: string; shape: number[] }[] = [
    { label: 'gray 8-bit', mode: 'L', shape: [5, 7], make: () => job('g8', volume('uint8', [7, 5, 1], fill('uint8', 35, 0, 255)), {}, 8) },
    { label: 'gray 16-bit', mode: 'I', shape: [5, 7], make: () => job('g16', volume('uint16', [7, 5, 1], fill('uint16', 35, 0, 65535)), {}, 16) },
    { label: 'RGB 8-bit (planar volume)', mode: 'RGB', shape: [4, 6, 3], make: () => job('c8', volume('uint8', [6, 4, 1, 3], fill('uint8', 72, 0, 255), { components: 'rgb' }), {}, 8) },
    { label: 'RGB 16-bit', mode: 'RGB;16', shape: [4, 6, 3], make: () => job('c16', volume('uint16', [6, 4, 1, 3], fill('uint16', 72, 0, 65535), { components: 'rgb' }), {}, 16) },
    { label: 'slice 3 of a 3D volume', mode: 'L', shape: [4, 5], make: () => job('z3', volume('uint8', [5, 4, 6], fill('uint8', 120, 0, 255)), { slice: 3 }, 8) },
    { label: 'default slice of a 3D volume is the middle one', mode: 'L', shape: [4, 5], make: () => job('zmid', volume('uint8', [5, 4, 7], fill('uint8', 140, 0, 255)), {}, 8) },
    { label: 'float values outside 0..255 clip; fractions round half up', mode: 'L', shape: [6, 9], make: () => job('clip', volume('float32', [9, 6, 1], fill('float32', 54, -80.5, 330.25)), { bitDepth: 8 }, 8) },
    { label: 'int16 negatives clip to 0 in 16-bit', mode: 'I', shape: [6, 6], make: () => job('neg', volume('int16', [6, 6, 1], fill('int16', 36, -3000, 3000)), {}, 16) },
    {
      label: 'CT window [-200, 300] on real values (slope 2, intercept -1024) → 8-bit',
      mode: 'L',
      shape: [8, 10],
      make: () => job('win8', volume('int16', [10, 8, 1], fill('int16', 80, 0, 1000), { rescale: { slope: 2, intercept: -1024 } }), { window: [-200, 300] }, 8),
    },
    {
      label: 'MR window [100, 900] → 16-bit',
      mode: 'I',
      shape: [8, 10],
      make: () => job('win16', volume('uint16', [10, 8, 1], fill('uint16', 80, 0, 1200)), { window: [100, 900], bitDepth: 16 }, 16),
    },
  ];

  let results: { mode: string; bits: number; shape: number[]; bad: number }[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gv-png-'));
    const jobs: Job[] = [];
    for (const c of cases) jobs.push(await c.make());
    results = JSON.parse(runPython(CHECK, [], { input: JSON.stringify(jobs) })) as typeof results;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(cases.map((c, i) => [c.label, i] as const))('%s', (_label, i) => {
    const c = cases[i]!;
    expect(results[i]).toEqual({ mode: c.mode, bits: c.mode === 'I' || c.mode === 'RGB;16' ? 16 : 8, shape: c.shape, bad: 0 });
  });

  it('window endpoints map to 0 and max, the midpoint to half (arithmetic check)', async () => {
    const v = volume('float32', [3, 1, 1], new Float32Array([-200, 50, 300]));
    const back = await readImage(await writePng(v, { window: [-200, 300] }), { limits: resolveLimits() }, 'w.png');
    // 250/500·255 = 127.5 rounds half up to 128
    expect(Array.from(back.data)).toEqual([0, 128, 255]);
    expect(back.dtype).toBe('uint8');
  });

  it('round trip through readImage keeps 16-bit samples', async () => {
    const v = volume('uint16', [4, 3, 1], new Uint16Array([0, 1, 255, 256, 1000, 4095, 30000, 32768, 40000, 65534, 65535, 7]));
    const back = await readImage(await writePng(v), { limits: resolveLimits() }, 'r.png');
    expect(back.dtype).toBe('uint16');
    expect(Array.from(back.data)).toEqual(Array.from(v.data));
  });
});

describe('writePng rejects what PNG cannot hold', () => {
  const gray = volume('uint8', [2, 2, 3], new Uint8Array(12));
  it.each([
    ['slice out of range', gray, { slice: 3 }, 'config'],
    ['negative slice', gray, { slice: -1 }, 'config'],
    ['empty window', gray, { window: [5, 5] as [number, number] }, 'config'],
    ['4D scalar volume', volume('uint8', [2, 2, 1, 2], new Uint8Array(8)), {}, 'shape'],
  ] as const)('%s → %s', async (_label, v, opts, code) => {
    const err = await writePng(v, opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatedError);
    expect((err as GatedError).code).toBe(code);
  });
});
