/**
 * End-to-end `segment` benchmark: wall time and peak resident memory of the whole process tree (CLI + decoding
 * sandbox) for mricron-data's 0.5 mm Colin27 (`ch2better.nii.gz`, 301×370×316) and a 512×512×300 volume made
 * from it, each segmented by a fresh CLI process exactly as a user runs it. Memory is compared with the input
 * volume's size as stored and as float32.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadInputDirect } from '../io/load.ts';
import { niftiParts } from '../io/nifti/write.ts';
import { realValues, type Volume } from '../io/volume.ts';

export interface SegmentBenchRow {
  input: string;
  shape: number[];
  storedMiB: number;
  float32MiB: number;
  wallS: number;
  peakTreeMiB: number;
  rssOverStored: number;
  rssOverFloat32: number;
  /** Each process's RSS at the moment of the tree's peak. */
  peakParts: string;
  device: string;
  status: string;
  /** Milliseconds per stage inside the CLI (load, segment, write) and per sub-stage of segment (`segment.*`). */
  timings?: Record<string, number>;
  /**
   * The CLI's resident MiB as the input began (Node, tfjs, the backend and the model: the runtime, before any
   * of the input is read) and its own peak (getrusage), from the run manifest.
   */
  memory?: Record<string, number>;
  /** Peak tree RSS minus that runtime baseline: what this input cost, in MiB and per stored MiB. */
  aboveBaselineMiB?: number;
  aboveBaselineOverStored?: number;
  /** What differs from a plain run (e.g. shaders compiled on first use instead of ahead). */
  variant?: string;
  /** How the CLI read the voxels (run manifest): `streamed` slice by slice from the file, or `whole`. */
  inputRead?: string;
}

export async function runSegmentBench(opts: { device: string; ch2better: string; model: string; cli: string[]; noReport?: boolean; log?: (l: string) => void }): Promise<SegmentBenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'gv-bench-seg-'));
  const log = opts.log ?? (() => undefined);
  try {
    const big = join(dir, 'colin_512x512x300.nii');
    const src = (await loadInputDirect(opts.ch2better)).volumes[0]!;
    await writeFile(big, Buffer.concat(niftiParts(resampleTo(src, [512, 512, 300], [0.4, 0.4, 0.55]))));
    const rows: SegmentBenchRow[] = [];
    // on WebGPU the large volume runs once more with the shaders compiled on first use, as before compile-ahead
    const runs: { input: string; variant?: string; env?: Record<string, string> }[] = [{ input: opts.ch2better }, { input: big }];
    if (opts.device === 'webgpu') runs.push({ input: big, variant: 'no compile-ahead', env: { GATEDVISION_COMPILE_AHEAD: '0' } });
    for (const { input, variant, env } of runs) {
      const v = input === big ? { shape: [512, 512, 300], bytes: 2 } : { shape: src.shape.slice(0, 3), bytes: src.data.BYTES_PER_ELEMENT };
      const n = v.shape.reduce((a, b) => a * b, 1);
      const out = join(dir, `out-${rows.length}`);
      const t0 = performance.now();
      const { code, peak, peakParts, stdout } = await runTree([...opts.cli, 'segment', input, '-o', out, '--model', opts.model, '--device', opts.device, '--json', ...(opts.noReport ? ['--no-report'] : [])], env);
      const wallS = (performance.now() - t0) / 1000;
      const storedMiB = (n * v.bytes) / 2 ** 20;
      const float32MiB = (n * 4) / 2 ** 20;
      const ok = code === 0 && readdirSync(out).some((f) => f.endsWith('.seg.nii.gz'));
      let timings: Record<string, number> | undefined;
      let memory: Record<string, number> | undefined;
      let inputRead: string | undefined;
      try {
        const record = JSON.parse(stdout).records?.[0];
        [timings, memory, inputRead] = [record?.timings, record?.memory, record?.inputRead];
      } catch {
        timings = undefined;
      }
      const above = memory?.start !== undefined ? peak / 2 ** 20 - memory.start : undefined;
      rows.push({ ...(timings ? { timings } : {}), ...(inputRead ? { inputRead } : {}), ...(memory ? { memory } : {}), ...(above !== undefined ? { aboveBaselineMiB: above, aboveBaselineOverStored: above / storedMiB } : {}), ...(variant ? { variant } : {}), input: input.split('/').pop()!, shape: v.shape, storedMiB, float32MiB, wallS, peakTreeMiB: peak / 2 ** 20, rssOverStored: peak / 2 ** 20 / storedMiB, rssOverFloat32: peak / 2 ** 20 / float32MiB, device: opts.device, status: ok ? 'done' : `exit ${code}`, peakParts });
      log(JSON.stringify(rows[rows.length - 1]));
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a command and samples the summed RSS of it and all its descendants every 20 ms. */
function runTree(argv: string[], env?: Record<string, string>): Promise<{ code: number; peak: number; peakParts: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], ...(env ? { env: { ...process.env, ...env } } : {}) });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    let peak = 0;
    let peakParts = '';
    const timer = setInterval(() => {
      const t = treeRss(child.pid!);
      if (t.total > peak) [peak, peakParts] = [t.total, t.parts];
    }, 20);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ code: code ?? -1, peak, peakParts, stdout });
    });
  });
}

/** Summed RSS of a process tree, and each process's share at that moment (which one holds the memory). */
function treeRss(root: number): { total: number; parts: string } {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended while we looked
    }
  }
  let total = 0;
  const parts: string[] = [];
  for (const pid of parent.keys()) {
    let p: number | undefined = pid;
    while (p !== undefined && p !== root && p > 1) p = parent.get(p);
    if (p !== root) continue;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) {
        total += Number(m[1]) * 1024;
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => a.split('/').pop()).slice(0, 3).join(' ');
        parts.push(`${pid === root ? 'cli' : 'child'} ${(Number(m[1]) / 1024).toFixed(0)} MiB (${cmd})`);
      }
    } catch {
      // gone
    }
  }
  return { total, parts: parts.join('; ') };
}

/** Trilinear resampling of a volume onto a centred grid of the given shape and spacing (int16 output). */
function resampleTo(v: Volume, shape: [number, number, number], spacing: [number, number, number]): Volume {
  const real = realValues(v);
  const [nx, ny, nz] = v.shape as [number, number, number];
  const out = new Int16Array(shape[0] * shape[1] * shape[2]);
  const sp = v.spacing;
  for (let z = 0; z < shape[2]; z++) {
    const fz = ((z - (shape[2] - 1) / 2) * spacing[2]) / sp[2]! + (nz - 1) / 2;
    for (let y = 0; y < shape[1]; y++) {
      const fy = ((y - (shape[1] - 1) / 2) * spacing[1]) / sp[1]! + (ny - 1) / 2;
      for (let x = 0; x < shape[0]; x++) {
        const fx = ((x - (shape[0] - 1) / 2) * spacing[0]) / sp[0]! + (nx - 1) / 2;
        const x0 = Math.floor(fx);
        const y0 = Math.floor(fy);
        const z0 = Math.floor(fz);
        if (x0 < 0 || y0 < 0 || z0 < 0 || x0 >= nx - 1 || y0 >= ny - 1 || z0 >= nz - 1) continue;
        const dx = fx - x0;
        const dy = fy - y0;
        const dz = fz - z0;
        const at = (i: number, j: number, k: number) => real[x0 + i + nx * (y0 + j + ny * (z0 + k))]!;
        const c00 = at(0, 0, 0) * (1 - dx) + at(1, 0, 0) * dx;
        const c10 = at(0, 1, 0) * (1 - dx) + at(1, 1, 0) * dx;
        const c01 = at(0, 0, 1) * (1 - dx) + at(1, 0, 1) * dx;
        const c11 = at(0, 1, 1) * (1 - dx) + at(1, 1, 1) * dx;
        out[x + shape[0] * (y + shape[1] * z)] = Math.round((c00 * (1 - dy) + c10 * dy) * (1 - dz) + (c01 * (1 - dy) + c11 * dy) * dz);
      }
    }
  }
  const c = [(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2];
  const centre = [0, 1, 2].map((r) => v.affine[r]![0]! * c[0]! + v.affine[r]![1]! * c[1]! + v.affine[r]![2]! * c[2]! + v.affine[r]![3]!);
  const affine = [0, 1, 2].map((r) => {
    const row = [0, 1, 2].map((j) => (v.affine[r]![j]! / sp[j]!) * spacing[j]!);
    return [...row, centre[r]! - row.reduce((a, b, j) => a + b * (shape[j]! - 1) / 2, 0)];
  });
  affine.push([0, 0, 0, 1]);
  return { data: out, dtype: 'int16', shape, spacing: [...spacing], affine, meta: { format: 'nifti', components: 'scalar', warnings: [] } };
}

/** One line per run, then where its segment stage went (sub-stages in seconds, largest first). */
export function formatSegmentRows(rows: SegmentBenchRow[]): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return rows
    .map((r) => {
      const t = r.timings ?? {};
      const stages = ['load', 'segment', 'write'].filter((k) => k in t).map((k) => `${k} ${s(t[k]!)} s`);
      const base = r.aboveBaselineMiB !== undefined ? `; runtime baseline ${r.memory!.start} MiB, peak - baseline ${r.aboveBaselineMiB.toFixed(0)} MiB = ${r.aboveBaselineOverStored!.toFixed(2)}x stored` : '';
      const head = `${r.input.padEnd(28)} ${r.shape.join('x').padEnd(12)} ${r.device.padEnd(7)} ${r.wallS.toFixed(1).padStart(7)} s  peak ${r.peakTreeMiB.toFixed(0).padStart(6)} MiB  = ${r.rssOverStored.toFixed(2)}x stored (${r.storedMiB.toFixed(0)} MiB), ${r.rssOverFloat32.toFixed(2)}x float32${base}  ${r.status}${r.inputRead ? ` (input read ${r.inputRead})` : ''}${r.variant ? ` [${r.variant}]` : ''}${stages.length ? `  (${stages.join(', ')})` : ''}`;
      const subs = Object.entries(t)
        .filter(([k]) => k.includes('.'))
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k.replace(/^segment\./, '')} ${s(v)}`);
      return subs.length ? `${head}\n    segment: ${subs.join(', ')}` : head;
    })
    .join('\n');
}
