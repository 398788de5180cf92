/**
 * Load test of the service on 127.0.0.1 only, bounded in jobs and time: C clients (one API key each) each submit
 * J small 2D segmentation jobs (raw PNG bodies) and poll them to the end, waiting out 429s as told by
 * Retry-After; then autocannon hammers job status reads. Prints jobs/s, submit and end-to-end p50/p99, status
 * counts (5xx must be 0) and the peak resident memory of the server and its workers.
 *
 *   npx tsx bench/service/load.ts [--clients 64] [--jobs 2] [--workers 2] [--side 48] [--max-seconds 300]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Store } from '../../service/store.ts';
import { childPids, pngBytes } from '../../tests/service/_server.ts';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '64' }, jobs: { type: 'string', default: '2' }, workers: { type: 'string', default: '2' }, side: { type: 'string', default: '48' }, 'max-seconds': { type: 'string', default: '300' } } });
const C = Number(values.clients);
const J = Number(values.jobs);
const deadline = Date.now() + Number(values['max-seconds']) * 1000;

const dir = mkdtempSync(join(tmpdir(), 'gv-load-'));
const store = new Store(dir);
const keys = Array.from({ length: C }, (_, i) => store.addKey(`client${i}`).token);
store.close();

const srv = spawn(process.execPath, [join(import.meta.dirname, '../../bin/gatedvision.mjs'), 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dir, '--workers', values.workers!, '--device', 'cpu', '--max-queued', '64', '--max-active', '2', '--rate-limit', '100000', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
let banner = '';
srv.stderr!.on('data', (c: Buffer) => (banner += c.toString()));
const url = await new Promise<string>((res, rej) => {
  const t = setInterval(() => {
    const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(banner);
    if (m) res((clearInterval(t), m[1]!));
  }, 50);
  srv.once('exit', (c) => rej(new Error(`server exited ${c}: ${banner}`)));
});

const rssMb = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
};
const rss = { server: [] as number[], workers: [] as number[] };
const sampler = setInterval(() => {
  rss.server.push(rssMb(srv.pid!));
  rss.workers.push(childPids(srv.pid!).reduce((s, p) => s + rssMb(p), 0));
}, 250);

const statuses = new Map<number, number>();
const count = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
const submitMs: number[] = [];
const e2eMs: number[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bodies = await Promise.all(Array.from({ length: 8 }, (_, i) => pngBytes(Number(values.side), i)));
let failedJobs = 0;

async function client(i: number): Promise<void> {
  const headers = { authorization: `Bearer ${keys[i]}` };
  for (let j = 0; j < J && Date.now() < deadline; j++) {
    const t0 = performance.now();
    let id = '';
    while (!id && Date.now() < deadline) {
      const ts = performance.now();
      const r = await fetch(`${url}/v1/jobs?task=segment&model=brain`, { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: bodies[(i + j) % bodies.length] });
      count(r.status);
      const b = (await r.json()) as { id?: string };
      if (r.status === 202) {
        submitMs.push(performance.now() - ts);
        id = b.id!;
      } else if (r.status === 429) await sleep(1000 * Number(r.headers.get('retry-after') ?? 1));
      else throw new Error(`submit answered ${r.status}`);
    }
    while (id && Date.now() < deadline) {
      await sleep(250);
      const r = await fetch(`${url}/v1/jobs/${id}`, { headers });
      count(r.status);
      const b = (await r.json()) as { status?: string };
      if (b.status === 'done' || b.status === 'failed' || b.status === 'rejected') {
        if (b.status !== 'done') failedJobs++;
        e2eMs.push(performance.now() - t0);
        break;
      }
    }
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: C }, (_, i) => client(i)));
const wall = (performance.now() - t0) / 1000;

// request latency of status reads under 64 connections (bounded by count)
const autocannon = createRequire(import.meta.url)('autocannon') as (o: object) => Promise<{ latency: { p50: number; p99: number }; requests: { average: number }; non2xx: number; errors: number; '5xx'?: number; statusCodeStats?: Record<string, { count: number }> }>;
const store2 = new Store(dir);
const someId = store2.idsWithStatus('done')[0];
const owner = someId ? store2.get(someId)!.client : 'client0';
store2.close();
const ac = await autocannon({ url: `${url}/v1/jobs/${someId}`, connections: 64, amount: 20_000, headers: { authorization: `Bearer ${keys[Number(owner.slice(6))]}` } });
clearInterval(sampler);
srv.kill('SIGTERM');
await new Promise((r) => srv.once('exit', r));
rmSync(dir, { recursive: true, force: true });

const pct = (a: number[], p: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
const fivexx = [...statuses].filter(([s]) => s >= 500).reduce((n, [, c]) => n + c, 0) + Object.entries(ac.statusCodeStats ?? {}).filter(([s]) => Number(s) >= 500).reduce((n, [, v]) => n + v.count, 0);
console.log(
  JSON.stringify(
    {
      clients: C,
      jobsPerClient: J,
      workers: Number(values.workers),
      side: Number(values.side),
      jobsDone: e2eMs.length - failedJobs,
      jobsNotDone: failedJobs,
      wallS: +wall.toFixed(1),
      jobsPerS: +(e2eMs.length / wall).toFixed(2),
      submitMs: { p50: +pct(submitMs, 50).toFixed(1), p99: +pct(submitMs, 99).toFixed(1) },
      endToEndMs: { p50: Math.round(pct(e2eMs, 50)), p99: Math.round(pct(e2eMs, 99)) },
      statuses: Object.fromEntries([...statuses].sort()),
      fiveXX: fivexx,
      statusReads: { reqPerS: Math.round(ac.requests.average), p50Ms: ac.latency.p50, p99Ms: ac.latency.p99, non2xx: ac.non2xx, errors: ac.errors },
      peakRssMb: { server: Math.round(Math.max(...rss.server)), serverEnd: Math.round(rss.server.at(-1) ?? 0), workersTotal: Math.round(Math.max(...rss.workers)) },
    },
    null,
    1,
  ),
);
if (fivexx > 0) process.exitCode = 1;
