/**
 * Seeded mutation fuzzing of the whole loader: real seed files are mutated (bit flips, interesting
 * values, length-field overwrites, truncation, splices) and each result is loaded in its own sandboxed
 * child with tight limits. The oracle is the one OSS-Fuzz uses: no crash, bounded memory, bounded time,
 * and here also: every failure carries a typed code (never `internal`).
 *
 *   npx tsx scripts/fuzz.ts --count 2000 --seed 7 [--json] [--out report.json]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GatedError } from '../core/errors.ts';
import { loadInput } from '../io/load.ts';

export interface FuzzOutcome {
  index: number;
  seed: string;
  mutation: string;
  outcome: 'ok' | string;
  ms: number;
}

export interface FuzzReport {
  count: number;
  seed: number;
  byOutcome: Record<string, number>;
  untyped: FuzzOutcome[];
  crashed: FuzzOutcome[];
  slowestMs: number;
}

export const DEFAULT_SEEDS = [
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small_bigendian.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small_implicit.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small_RLE.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/JPEG2000.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/SC_rgb_small_odd.dcm',
  '/usr/lib/python3/dist-packages/pydicom/data/test_files/image_dfl.dcm',
  '/usr/lib/python3/dist-packages/nibabel/tests/data/example4d.nii.gz',
  '/usr/lib/python3/dist-packages/nibabel/tests/data/anatomical.nii',
  '/usr/lib/python3/dist-packages/nibabel/tests/data/example_nifti2.nii.gz',
  '/usr/lib/python3/dist-packages/skimage/data/camera.png',
];

/** mulberry32: small, fast, seedable; quality is plenty for choosing mutations. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING32 = [0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7ffffff0, 0xfffffffe, 0xffffffff, 0x80000000, 46341, 65535];

export function mutate(src: Uint8Array, r: () => number): { bytes: Uint8Array; name: string } {
  const pick = (n: number) => Math.floor(r() * n);
  const b = new Uint8Array(src);
  switch (pick(6)) {
    case 0: {
      const n = 1 + pick(16);
      for (let i = 0; i < n; i++) b[pick(b.length)]! ^= 1 << pick(8);
      return { bytes: b, name: `flip${n}` };
    }
    case 1: {
      const at = pick(Math.max(1, b.length - 4));
      new DataView(b.buffer).setUint32(at, INTERESTING32[pick(INTERESTING32.length)]!, r() < 0.5);
      return { bytes: b, name: `u32@${at}` };
    }
    case 2: {
      // Header region: lengths, dims and offsets live in the first kilobytes of every format here.
      const at = pick(Math.min(b.length, 2048));
      b[at] = [0, 0xff, 0x80, 0x7f, 0x01][pick(5)]!;
      return { bytes: b, name: `byte@${at}` };
    }
    case 3: {
      const len = pick(b.length);
      return { bytes: b.subarray(0, len), name: `trunc${len}` };
    }
    case 4: {
      const from = pick(b.length);
      const len = Math.min(b.length - from, 1 + pick(256));
      const at = pick(b.length);
      const out = new Uint8Array(b.length + len);
      out.set(b.subarray(0, at));
      out.set(b.subarray(from, from + len), at);
      out.set(b.subarray(at), at + len);
      return { bytes: out, name: `splice${len}@${at}` };
    }
    default: {
      const at = pick(b.length);
      const n = Math.min(b.length - at, 1 + pick(64));
      for (let i = 0; i < n; i++) b[at + i] = pick(256);
      return { bytes: b, name: `rand${n}@${at}` };
    }
  }
}

export async function fuzz(opts: { count: number; seed: number; seeds?: string[]; onResult?: (o: FuzzOutcome) => void }): Promise<FuzzReport> {
  const seeds = await Promise.all((opts.seeds ?? DEFAULT_SEEDS).map(async (p) => ({ path: p, bytes: new Uint8Array(await readFile(p)) })));
  const r = rng(opts.seed);
  const dir = await mkdtemp(join(tmpdir(), 'gv-fuzz-'));
  const byOutcome: Record<string, number> = {};
  const untyped: FuzzOutcome[] = [];
  const crashed: FuzzOutcome[] = [];
  let slowestMs = 0;
  try {
    for (let i = 0; i < opts.count; i++) {
      const s = seeds[Math.floor(r() * seeds.length)]!;
      const m = mutate(s.bytes, r);
      const file = join(dir, `case-${i}`);
      await writeFile(file, m.bytes);
      const t0 = performance.now();
      let outcome = 'ok';
      try {
        await loadInput(file, { limits: { sandboxTimeoutMs: 20_000, sandboxRssMb: 2048, sandboxHeapMb: 1024, maxInflatedBytes: 256 << 20, maxVoxelBytes: 512 << 20 } });
      } catch (e) {
        outcome = e instanceof GatedError ? e.code : 'untyped';
      }
      const ms = performance.now() - t0;
      slowestMs = Math.max(slowestMs, ms);
      const o: FuzzOutcome = { index: i, seed: s.path.split('/').pop()!, mutation: m.name, outcome, ms: Math.round(ms) };
      byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
      if (outcome === 'internal' || outcome === 'untyped') untyped.push(o);
      if (outcome === 'worker_crashed' || outcome === 'timeout') crashed.push(o);
      opts.onResult?.(o);
      await rm(file, { force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { count: opts.count, seed: opts.seed, byOutcome, untyped, crashed, slowestMs: Math.round(slowestMs) };
}

async function cli(): Promise<void> {
  const { values } = parseArgs({ options: { count: { type: 'string', default: '500' }, seed: { type: 'string', default: '1' }, json: { type: 'boolean' }, out: { type: 'string' } } });
  const report = await fuzz({
    count: Number(values.count),
    seed: Number(values.seed),
    onResult: (o) => {
      if (!values.json && (o.index + 1) % 50 === 0) process.stderr.write(`fuzz: ${o.index + 1}/${values.count}\n`);
    },
  });
  const text = JSON.stringify(report, null, 2);
  if (values.out) await writeFile(values.out, text);
  process.stdout.write(`${values.json ? text : `outcomes ${JSON.stringify(report.byOutcome)}; untyped ${report.untyped.length}; crashed/timeouts ${report.crashed.length}; slowest ${report.slowestMs} ms`}\n`);
  if (report.untyped.length > 0 || report.crashed.length > 0) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await cli();
