/**
 * io benchmark: the same inputs loaded by us and by pydicom+numpy, dcm2niix and nibabel, in one run,
 * each as a whole process (start-up included), repeated; medians of wall time, of CPU time (user + system,
 * all threads and waited-for children) and of the peak resident memory of the whole process tree (our
 * decoding child, where there is one, included), sampled from /proc.
 *
 *   /usr/bin/python3 bench/io/make_data.py /tmp/gv-bench     # once: builds the inputs from Colin27
 *   npx tsx bench/io/run.ts /tmp/gv-bench [--repeat 5] [--markdown] [--against /path/to/other/checkout]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface Sample {
  ms: number;
  peakMb: number;
  /** user + system CPU time of every process of the tree (all threads), as last sampled from /proc */
  cpuMs: number;
}

const root = join(import.meta.dirname, '..', '..');
const BIN = join(root, 'bin', 'gatedvision.mjs');
const PY = '/usr/bin/python3';
const CLOCK_TICKS = 100; // USER_HZ of /proc/<pid>/stat on Linux

export async function measure(cmd: string, args: string[]): Promise<Sample> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    if (err.length < 4000) err += d.toString();
  });
  let peak = 0;
  // CPU time as well as wall time: on a shared machine the wall time of a multi-threaded run moves with
  // the other jobs' load far more than the work it does. Sampled per process (a decoding child may outlive
  // its caller, so nothing waits for it to count its time); the last <10 ms of each process are missed alike.
  const cpuTicks = new Map<number, number>();
  const timer = setInterval(() => {
    peak = Math.max(peak, treeRssMb(child.pid!, cpuTicks));
  }, 10);
  const code: number = await new Promise((res) => child.on('exit', (c) => res(c ?? -1)));
  clearInterval(timer);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`);
  const ticks = [...cpuTicks.values()].reduce((a, b) => a + b, 0);
  return { ms, peakMb: peak, cpuMs: (ticks * 1000) / CLOCK_TICKS };
}

function treeRssMb(pid: number, cpuTicks: Map<number, number>): number {
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try {
      total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      // utime and stime: fields 14 and 15, counted after the command name (which may hold spaces)
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpuTicks.set(p, Number(f[11]) + Number(f[12]));
      for (const t of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        if (kids) for (const k of kids.split(/\s+/)) stack.push(Number(k));
      }
    } catch {
      // the process ended between samples
    }
  }
  return total;
}

/** name, command, arguments */
type Tool = [string, string, string[]];

/**
 * Every tool writes a new file in every run. dcm2niix never replaces a file (it names the next one d2na.nii,
 * d2nb.nii, ...), while our convert replaced the previous run's output, and freeing the replaced 150 MiB
 * file took 30-40 ms of its rename on this disk: each run now starts with the previous outputs removed
 * (not timed).
 */
function removeOutputs(out: string): void {
  for (const f of readdirSync(out)) rmSync(join(out, f), { force: true });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** bin/gatedvision.mjs runs the TypeScript through tsx when a source is newer than dist/: not what is measured. */
function warnIfStale(): void {
  const built = join(root, 'dist', 'BUILT');
  const stamp = existsSync(built) ? statSync(built).mtimeMs : 0;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory() ? e.name !== 'node_modules' && !e.name.startsWith('.') && newer(join(dir, e.name)) : e.name.endsWith('.ts') && statSync(join(dir, e.name)).mtimeMs > stamp,
    );
  const stale = ['core', 'io', 'kernels', 'backbones', 'heads', 'pipelines', 'service', 'cli'].filter((d) => existsSync(join(root, d)) && newer(join(root, d)));
  if (stale.length > 0) process.stderr.write(`warning: ${stale.join(', ')} newer than dist/ (run npm run build): our rows would include the TypeScript loader\n`);
}

async function main(): Promise<void> {
  warnIfStale();
  // --against DIR: another checkout's CLI (built) as an extra row of every case, interleaved with ours in the same
  // run, so a before/after comparison is not at the mercy of the load moving between two runs
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { repeat: { type: 'string', default: '5' }, markdown: { type: 'boolean' }, against: { type: 'string' } } });
  const data = positionals[0] ?? '/tmp/gv-bench';
  const repeat = Number(values.repeat);
  const out = mkdtempSync(join(tmpdir(), 'gv-bench-out-'));
  const cases: { input: string; volumeMb: number; tools: Tool[] }[] = [
    {
      input: 'DICOM 512x512x300 int16, explicit VR LE',
      volumeMb: (512 * 512 * 300 * 2) / 2 ** 20,
      tools: [
        ['gatedvision convert → .nii', process.execPath, [BIN, 'convert', join(data, 'plain'), join(out, 'a.nii')]],
        ['pydicom + numpy', PY, [join(root, 'bench/io/pydicom_load.py'), join(data, 'plain')]],
        ['dcm2niix', 'dcm2niix', ['-z', 'n', '-b', 'n', '-f', 'd2n', '-o', out, join(data, 'plain')]],
      ],
    },
    {
      input: 'DICOM 512x512x300 int16, JPEG-LS lossless',
      volumeMb: (512 * 512 * 300 * 2) / 2 ** 20,
      tools: [
        ['gatedvision convert → .nii', process.execPath, [BIN, 'convert', join(data, 'jpegls'), join(out, 'b.nii')]],
        // Debian's dcm2niix is built without JPEG-LS, so it has no row here.
        ['pydicom + numpy (gdcm)', PY, [join(root, 'bench/io/pydicom_load.py'), join(data, 'jpegls')]],
      ],
    },
    {
      input: 'NIfTI .nii.gz 512x512x300 int16',
      volumeMb: (512 * 512 * 300 * 2) / 2 ** 20,
      tools: [
        ['gatedvision convert → .nii', process.execPath, [BIN, 'convert', join(data, 'volume.nii.gz'), join(out, 'c.nii')]],
        ['nibabel', PY, [join(root, 'bench/io/nibabel_load.py'), join(data, 'volume.nii.gz')]],
      ],
    },
  ];
  if (values.against) {
    const other = join(values.against, 'bin', 'gatedvision.mjs');
    for (const c of cases) {
      const [, cmd, args] = c.tools[0]!;
      c.tools.splice(1, 0, [`gatedvision convert → .nii (${values.against})`, cmd, [other, ...args.slice(1, -1), `${args.at(-1)!}.against.nii`]]);
    }
  }
  const rows: string[] = [];
  for (const c of cases) {
    const results: { name: string; ms: number; peakMb: number; cpuMs: number }[] = [];
    // Interleave tools within each repeat so machine noise hits all of them alike.
    const samples = new Map<string, Sample[]>();
    for (let r = 0; r < repeat + 1; r++) {
      for (const [name, cmd, args] of c.tools) {
        removeOutputs(out);
        const s = await measure(cmd, args);
        if (r > 0) samples.set(name, [...(samples.get(name) ?? []), s]); // first round warms the page cache
      }
    }
    for (const [name] of c.tools) {
      const s = samples.get(name)!;
      results.push({ name, ms: median(s.map((x) => x.ms)), peakMb: median(s.map((x) => x.peakMb)), cpuMs: median(s.map((x) => x.cpuMs)) });
    }
    const ours = results[0]!;
    for (const r of results) {
      rows.push(`| ${c.input} | ${r.name} | ${r.ms.toFixed(0)} | ${(r.ms / ours.ms).toFixed(2)} | ${r.cpuMs.toFixed(0)} | ${r.peakMb.toFixed(0)} | ${(r.peakMb / c.volumeMb).toFixed(2)} |`);
    }
  }
  rmSync(out, { recursive: true, force: true });
  const header = `| input | tool | median wall ms | ratio to ours | median CPU ms | median peak RSS MiB (process tree) | peak / volume size |\n|---|---|---|---|---|---|---|`;
  const meta = `${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, repeat ${repeat} (+1 warm-up), load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`;
  process.stdout.write(`${meta}\n\n${header}\n${rows.join('\n')}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
