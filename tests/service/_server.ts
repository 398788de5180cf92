/** A real `gatedvision serve` process on 127.0.0.1 for the service tests, and small helpers around it. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { PYDICOM_FILES, requireData } from '../_helpers/testdata.ts';
import { Store } from '../../service/store.ts';

export const BIN = resolve('bin/gatedvision.mjs');

/** Through the command, as an operator would. */
export function addKeyCli(dataDir: string, client: string): string {
  const r = spawnSync(process.execPath, [BIN, 'keys', 'add', client, '--data-dir', dataDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`keys add failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Straight into the store (no process start-up): for tests about other things. */
export function addKey(dataDir: string, client: string): string {
  const store = new Store(dataDir);
  try {
    return store.addKey(client).token;
  } finally {
    store.close();
  }
}

export interface Srv {
  url: string;
  proc: ChildProcess;
  pid: number;
  /** Everything the server wrote (pino lines on stdout, the banner on stderr). */
  output(): string;
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export async function startServer(dataDir: string, extra: string[] = []): Promise<Srv> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, '--device', 'cpu', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const url = await new Promise<string>((res, rej) => {
    const t = setInterval(() => {
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) {
        clearInterval(t);
        res(m[1]!);
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(t);
      rej(new Error(`server exited with ${code}: ${out}`));
    });
  });
  return {
    url,
    proc,
    pid: proc.pid!,
    output: () => out,
    stop: async () => {
      proc.kill('SIGTERM');
      return exited;
    },
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** Child processes of a pid (the embedded workers), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `fn` returns a value other than undefined; bounded by `tries`. */
export async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, what: string, tries = 600, everyMs = 100): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * True once `path` is gone (within ~5 s). A job's status turns final before its input folder is removed (the store
 * is updated first so a crash in between cannot lose a finished result), so a client can see the end a moment earlier.
 */
export async function gone(path: string): Promise<boolean> {
  return waitFor(() => (existsSync(path) ? undefined : true), `${path} to be removed`, 50, 100).catch(() => false);
}

export class Client {
  constructor(
    readonly url: string,
    readonly key: string,
  ) {}
  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.key}`, ...extra };
  }
  async submit(body: Uint8Array, params: Record<string, string> = { task: 'segment', model: 'brain' }, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
    const res = await fetch(`${this.url}/v1/jobs?${new URLSearchParams(params)}`, { method: 'POST', headers: this.headers({ 'content-type': 'application/octet-stream', ...headers }), body });
    return { status: res.status, body: await res.json(), headers: res.headers };
  }
  /** GET; a 429 is waited out (Retry-After), so polling never turns into a failure. */
  async get(path: string, tries = 20): Promise<{ status: number; body: any; headers: Headers }> {
    let res = await fetch(this.url + path, { headers: this.headers() });
    for (let i = 0; res.status === 429 && i < tries; i++) {
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
      res = await fetch(this.url + path, { headers: this.headers() });
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (metrics, files)
    }
    return { status: res.status, body, headers: res.headers };
  }
  /** Polls a job until it has ended. */
  async settled(id: string, tries = 480): Promise<any> {
    return waitFor(async () => {
      const r = await this.get(`/v1/jobs/${id}`);
      return r.body?.status === 'queued' || r.body?.status === 'running' ? undefined : r.body;
    }, `job ${id}`, tries, 250);
  }
}

/** A small grey PNG with a pattern (side × side). */
export async function pngBytes(side: number, seed = 0): Promise<Buffer> {
  const px = Buffer.alloc(side * side);
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) px[y * side + x] = ((x + y) * 2 + seed * 17) & 255;
  return sharp(px, { raw: { width: side, height: side, channels: 1 } }).png().toBuffer();
}

/** Every name under a folder, relative. */
export function walk(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p.slice(base.length + 1));
    if (e.isDirectory()) out.push(...walk(p, base));
  }
  return out;
}

/** pydicom's broken and non-image files of the bad-input corpus (truncated, no transfer syntax, no meta, no pixels). */
export const BAD_DICOM = ['MR_truncated.dcm', 'meta_missing_tsyntax.dcm', 'no_meta.dcm', 'rtplan.dcm', 'rtplan_truncated.dcm', 'reportsi.dcm'];

/**
 * The bad-input corpus as uploads: the pydicom files above, a truncated PNG and a gzip whose ISIZE claims 4 GiB,
 * then one valid DICOM slice (`CT_small.dcm`, last) that must still end done.
 */
export async function hostileCorpus(): Promise<Array<[string, Buffer]>> {
  const inputs: Array<[string, Buffer]> = BAD_DICOM.map((f) => join(requireData(PYDICOM_FILES), f)).map((f) => [f, readFileSync(f)]);
  inputs.push(['truncated png', (await pngBytes(64)).subarray(0, 80)]);
  const forged = gzipSync(Buffer.alloc(400));
  forged.writeUInt32LE(0xffffffff, forged.length - 4);
  inputs.push(['forged gzip', forged]);
  inputs.push(['CT_small.dcm', readFileSync(join(PYDICOM_FILES, 'CT_small.dcm'))]);
  return inputs;
}
