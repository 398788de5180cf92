/**
 * Compressed series decoded on several threads give the same volume, bit for bit, as decoded on one:
 * a real volume (Colin27, tests/_oracles/make_series.py) encoded by dcmtk/GDCM as RLE, JPEG lossless SV1,
 * JPEG-LS and JPEG 2000, one with a slope that varies per slice (float volume), and one with a damaged
 * slice (the same rejection and the same second-attempt volume).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poolCounters } from '../../../io/dicom/decode_pool.ts';
import { loadInputDirect } from '../../../io/load.ts';
import type { LoadResult } from '../../../io/types.ts';
import { PYTHON } from '../../_helpers/python.ts';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'gv-decode-pool-'));
const MAKE = join(import.meta.dirname, '..', '..', '_oracles', 'make_series.py');

function encode(src: string, name: string, tool: string, args: string[]): string {
  const out = join(root, name);
  mkdirSync(out);
  for (const f of readdirSync(src)) execFileSync(tool, [...args, join(src, f), join(out, f)]);
  return out;
}

const dirs: Record<string, string> = {};
beforeAll(async () => {
  await Promise.all(['axial', 'rescalevar'].map((v) => run(PYTHON, [MAKE, join(root, v), v])));
  dirs.rle = encode(join(root, 'axial'), 'rle', 'dcmcrle', []);
  dirs['jpeg-sv1'] = encode(join(root, 'axial'), 'jpeg-sv1', 'dcmcjpeg', ['+e1']);
  dirs['jpeg-ls'] = encode(join(root, 'axial'), 'jpeg-ls', 'dcmcjpls', []);
  dirs.j2k = encode(join(root, 'axial'), 'j2k', 'gdcmconv', ['--j2k']);
  dirs['jpeg-ls rescale varies'] = encode(join(root, 'rescalevar'), 'jpeg-ls-var', 'dcmcjpls', []);
  // a middle slice whose codestream is damaged: its header reads, its pixels do not
  dirs['jpeg-ls damaged'] = encode(join(root, 'axial'), 'jpeg-ls-bad', 'dcmcjpls', []);
  const victim = join(dirs['jpeg-ls damaged'], '017.dcm');
  const bytes = readFileSync(victim);
  const sos = bytes.lastIndexOf(Buffer.from([0xff, 0xda]));
  bytes.fill(0xff, sos + 16, bytes.length - 16);
  writeFileSync(victim, bytes);
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function load(dir: string, decodeThreads: number): Promise<LoadResult> {
  return loadInputDirect(dir, { sandbox: false, limits: { decodeThreads } });
}

describe('decoding compressed frames on several threads', () => {
  it.each(['rle', 'jpeg-sv1', 'jpeg-ls', 'j2k', 'jpeg-ls rescale varies', 'jpeg-ls damaged'])('%s: the same result as on one thread', async (name) => {
    const one = await load(dirs[name]!, 1);
    const before = poolCounters.frames;
    const pooled = await load(dirs[name]!, 2);
    // a helper thread decoded frames (the reading thread the others)
    expect(poolCounters.frames - before).toBeGreaterThan(0);
    expect(pooled.volumes.length).toBe(1);
    const [a, b] = [one.volumes[0]!, pooled.volumes[0]!];
    expect(b.shape).toEqual(a.shape);
    expect(b.dtype).toBe(a.dtype);
    expect(b.affine).toEqual(a.affine);
    expect(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength))).toBe(true);
    expect(pooled.rejected).toEqual(one.rejected);
    expect(pooled.warnings).toEqual(one.warnings);
  });

  it('the comparisons compare real decoding: the series decode to the same voxels as uncompressed', async () => {
    const plain = (await load(join(root, 'axial'), 1)).volumes[0]!;
    const ls = (await load(dirs['jpeg-ls']!, 2)).volumes[0]!;
    expect(plain.shape).toEqual([90, 108, 40]);
    expect(Array.from(ls.data)).toEqual(Array.from(plain.data));
    expect(new Set(plain.data).size).toBeGreaterThan(100);
    const bad = await load(dirs['jpeg-ls damaged']!, 2);
    expect(bad.rejected.map((r) => r.name)).toEqual(['017.dcm']);
    expect(bad.volumes[0]!.shape).toEqual([90, 108, 39]);
    const varied = (await load(dirs['jpeg-ls rescale varies']!, 2)).volumes[0]!;
    expect(varied.dtype).toBe('float32');
  });
});
