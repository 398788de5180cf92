/**
 * End-to-end `segment` benchmark: wall time and peak resident memory of the whole process tree (CLI + decoding
 * sandbox) for mricron-data's 0.5 mm Colin27 (`ch2better.nii.gz`, 301×370×316) and a 512×512×300 volume made
 * from it, as an uncompressed `.nii` and as an axial DICOM series of 300 files (explicit VR little endian, int16,
 * slope 1 intercept 0, rows and columns running against the model's grid as a scanner's do), each segmented by a
 * fresh CLI process exactly as a user runs it. Memory is compared with the input volume's size as stored and as
 * float32.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
   * of the input is read) and its own peak (VmHWM), from the run manifest.
   */
  memory?: Record<string, number>;
  /** Peak tree RSS minus that runtime baseline: what this input cost, in MiB and per stored MiB. */
  aboveBaselineMiB?: number;
  aboveBaselineOverStored?: number;
  /** What differs from a plain run (e.g. shaders compiled on first use instead of ahead). */
  variant?: string;
  /** How the CLI read the voxels (run manifest): `streamed` slice by slice from the file, or `whole`. */
  inputRead?: string;
  /**
   * This process's resident MiB as it started the CLI: before the manifest's peak was VmHWM, getrusage carried
   * it into the CLI's recorded peak (fork counts the shared pages against the child; exec keeps the maximum).
   */
  benchRssAtSpawnMiB?: number;
}

/** The inputs a run can take: ch2better itself, the 512×512×300 volume as a `.nii`, the same as a DICOM series. */
export type SegmentBenchInput = 'ch2better' | 'nii' | 'dicom';

export async function runSegmentBench(opts: { device: string; ch2better: string; model: string; cli: string[]; noReport?: boolean; inputs?: SegmentBenchInput[]; log?: (l: string) => void }): Promise<SegmentBenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'gv-bench-seg-'));
  const log = opts.log ?? (() => undefined);
  const inputs = new Set(opts.inputs ?? ['ch2better', 'nii', 'dicom']);
  try {
    const big = join(dir, 'colin_512x512x300.nii');
    const series = join(dir, 'colin_512x512x300_dicom');
    const src = (await loadInputDirect(opts.ch2better)).volumes[0]!;
    const bigVolume = resampleTo(src, [512, 512, 300], [0.4, 0.4, 0.55]);
    if (inputs.has('nii')) await writeFile(big, Buffer.concat(niftiParts(bigVolume)));
    if (inputs.has('dicom')) writeAxialSeries(series, bigVolume);
    const rows: SegmentBenchRow[] = [];
    // on WebGPU the large volume runs once more with the shaders compiled on first use, as before compile-ahead
    const runs: { input: string; variant?: string; env?: Record<string, string> }[] = [];
    if (inputs.has('ch2better')) runs.push({ input: opts.ch2better });
    if (inputs.has('nii')) runs.push({ input: big });
    if (inputs.has('dicom')) runs.push({ input: series });
    if (opts.device === 'webgpu' && inputs.has('nii')) runs.push({ input: big, variant: 'no compile-ahead', env: { GATEDVISION_COMPILE_AHEAD: '0' } });
    for (const { input, variant, env } of runs) {
      const v = input === big || input === series ? { shape: [512, 512, 300], bytes: 2 } : { shape: src.shape.slice(0, 3), bytes: src.data.BYTES_PER_ELEMENT };
      const n = v.shape.reduce((a, b) => a * b, 1);
      const out = join(dir, `out-${rows.length}`);
      const t0 = performance.now();
      const { code, peak, peakParts, stdout, parentRss } = await runTree([...opts.cli, 'segment', input, '-o', out, '--model', opts.model, '--device', opts.device, '--json', ...(opts.noReport ? ['--no-report'] : [])], env);
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
      rows.push({ ...(timings ? { timings } : {}), ...(inputRead ? { inputRead } : {}), ...(memory ? { memory } : {}), ...(above !== undefined ? { aboveBaselineMiB: above, aboveBaselineOverStored: above / storedMiB } : {}), ...(variant ? { variant } : {}), benchRssAtSpawnMiB: parentRss / 2 ** 20, input: input.split('/').pop()!, shape: v.shape, storedMiB, float32MiB, wallS, peakTreeMiB: peak / 2 ** 20, rssOverStored: peak / 2 ** 20 / storedMiB, rssOverFloat32: peak / 2 ** 20 / float32MiB, device: opts.device, status: ok ? 'done' : `exit ${code}`, peakParts });
      log(JSON.stringify(rows[rows.length - 1]));
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a command and samples the summed RSS of it and all its descendants every 20 ms. */
function runTree(argv: string[], env?: Record<string, string>): Promise<{ code: number; peak: number; peakParts: string; stdout: string; parentRss: number }> {
  return new Promise((resolve) => {
    const parentRss = process.memoryUsage.rss();
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
      resolve({ code: code ?? -1, peak, peakParts, stdout, parentRss });
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

/**
 * `v` (int16, axes along R, A, S) as an axial DICOM series, one file per slice: explicit VR little endian, int16,
 * slope 1 intercept 0, ImageOrientationPatient (1, 0, 0, 0, 1, 0) (columns run to the left, rows to the back, as a
 * scanner stores them). Pixel (row r, column c) of slice k is voxel (nx-1-c, ny-1-r, k), so the series' volume
 * on the model's grid is `v` itself, at the same world positions.
 */
export function writeAxialSeries(dir: string, v: Volume): void {
  mkdirSync(dir, { recursive: true });
  const [nx, ny, nz] = v.shape as [number, number, number];
  const a = v.affine;
  const data = v.data as Int16Array;
  const plane = nx * ny;
  const px = new Int16Array(plane);
  const ras = (i: number, j: number, k: number) => [0, 1, 2].map((r) => a[r]![0]! * i + a[r]![1]! * j + a[r]![2]! * k + a[r]![3]!);
  const lps = (p: number[]) => [-p[0]!, -p[1]!, p[2]!];
  const dirOf = (c: number) => {
    const d = lps([-a[0]![c]!, -a[1]![c]!, -a[2]![c]!]);
    const n = Math.hypot(...d);
    return d.map((x) => x / n);
  };
  const iop = [...dirOf(0), ...dirOf(1)];
  const uid = (n: number) => `2.25.${314159265358979 + n}`;
  for (let k = 0; k < nz; k++) {
    for (let r = 0; r < ny; r++) {
      const src = k * plane + (ny - 1 - r) * nx;
      for (let c = 0; c < nx; c++) px[r * nx + c] = data[src + nx - 1 - c]!;
    }
    const ds = (s: number[]) => s.map((x) => String(Number(x.toFixed(6)))).join('\\');
    writeFileSync(
      join(dir, `${String(k).padStart(4, '0')}.dcm`),
      dicomFile(uid(1000 + k), [
        [0x00080016, 'UI', CT_IMAGE],
        [0x00080018, 'UI', uid(1000 + k)],
        [0x00080060, 'CS', 'CT'],
        [0x00100010, 'PN', 'Bench^Volume'],
        [0x00100020, 'LO', 'BENCH'],
        [0x0020000d, 'UI', uid(1)],
        [0x0020000e, 'UI', uid(2)],
        [0x00200011, 'IS', '1'],
        [0x00200013, 'IS', String(k + 1)],
        [0x00200032, 'DS', ds(lps(ras(nx - 1, ny - 1, k)))],
        [0x00200037, 'DS', ds(iop)],
        [0x00200052, 'UI', uid(3)],
        [0x00280002, 'US', 1],
        [0x00280004, 'CS', 'MONOCHROME2'],
        [0x00280010, 'US', ny],
        [0x00280011, 'US', nx],
        [0x00280030, 'DS', ds([v.spacing[1]!, v.spacing[0]!])],
        [0x00280100, 'US', 16],
        [0x00280101, 'US', 16],
        [0x00280102, 'US', 15],
        [0x00280103, 'US', 1],
        [0x00281052, 'DS', '0'],
        [0x00281053, 'DS', '1'],
        [0x7fe00010, 'OW', new Uint8Array(px.buffer)],
      ]),
    );
  }
}

const CT_IMAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** A Part 10 file: preamble, file meta (group 2) and the data set, explicit VR little endian, tags ascending. */
function dicomFile(sopInstance: string, elements: [number, string, string | number | Uint8Array][]): Buffer {
  const meta = Buffer.concat([element(0x00020001, 'OB', Uint8Array.of(0, 1)), element(0x00020002, 'UI', CT_IMAGE), element(0x00020003, 'UI', sopInstance), element(0x00020010, 'UI', EXPLICIT_LE)]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(meta.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), element(0x00020000, 'UL', length), meta, ...elements.map(([t, vr, val]) => element(t, vr, val))]);
}

function element(tag: number, vr: string, value: string | number | Uint8Array): Buffer {
  let body: Buffer;
  if (typeof value === 'number') {
    body = Buffer.alloc(2);
    body.writeUInt16LE(value);
  } else if (typeof value === 'string') {
    body = Buffer.from(value.length % 2 ? value + (vr === 'UI' ? '\0' : ' ') : value, 'latin1');
  } else body = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const long = vr === 'OB' || vr === 'OW';
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(body.length, 8);
  else head.writeUInt16LE(body.length, 6);
  return Buffer.concat([head, body]);
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
      // the CLI's own high-water mark (the manifest's memory.peak), which no 20 ms sample can miss
      const hwm = r.memory?.peak !== undefined ? `; high-water ${r.memory.peak} MiB = ${(r.memory.peak / r.storedMiB).toFixed(2)}x stored${r.benchRssAtSpawnMiB !== undefined ? ` (bench process ${r.benchRssAtSpawnMiB.toFixed(0)} MiB at spawn)` : ''}` : '';
      const head = `${r.input.padEnd(28)} ${r.shape.join('x').padEnd(12)} ${r.device.padEnd(7)} ${r.wallS.toFixed(1).padStart(7)} s  peak ${r.peakTreeMiB.toFixed(0).padStart(6)} MiB  = ${r.rssOverStored.toFixed(2)}x stored (${r.storedMiB.toFixed(0)} MiB), ${r.rssOverFloat32.toFixed(2)}x float32${hwm}${base}  ${r.status}${r.inputRead ? ` (input read ${r.inputRead})` : ''}${r.variant ? ` [${r.variant}]` : ''}${stages.length ? `  (${stages.join(', ')})` : ''}`;
      const subs = Object.entries(t)
        .filter(([k]) => k.includes('.'))
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k.replace(/^segment\./, '')} ${s(v)}`);
      return subs.length ? `${head}\n    segment: ${subs.join(', ')}` : head;
    })
    .join('\n');
}
