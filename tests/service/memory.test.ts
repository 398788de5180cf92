/**
 * Memory returns to its level after hostile input: a real server and its long-lived worker, warmed up by one valid
 * job, then the bad-input corpus once (R1) and three more times (R2). Resident memory is read from /proc (VmRSS) as
 * the minimum of several samples over about two seconds once every job has ended, so a garbage collection that
 * has not run yet does not count as a leak. Nothing is timed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client, addKey, alive, childPids, hostileCorpus, pngBytes, startServer, type Srv } from './_server.ts';

const MiB = 2 ** 20;
/**
 * Allowed growth from R1 to R2. Each round of the corpus is 9 uploads, 8 of them jobs a worker decodes, so the
 * 3 rounds are 27 uploads and 24 decoding jobs. Without a leak, R2 - R1 measured -2.8 and +7.8 MiB from the
 * bundle and -17.7 MiB from sources through the TypeScript loader (heap growth and collection timing). A leak of
 * one decoded 512×512 float32 slice (1 MiB, the size a CT slice is worked on) per upload would add 27 MiB, and one
 * per decoding job 24 MiB (measured: 24.7 MiB, and the test fails): both are over this margin.
 */
const MARGIN = 22 * MiB;

let dir: string;
let srv: Srv;
let c: Client;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gv-memory-'));
  const key = addKey(dir, 'ward');
  srv = await startServer(dir, ['--workers', '1', '--max-active', '20', '--max-queued', '30', '--rate-limit', '5000']);
  c = new Client(srv.url, key);
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The server's job workers (when run from sources, its TypeScript loader's esbuild process is a child too). */
function jobWorkers(pid: number): number[] {
  return childPids(pid).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes('--child'));
}

function vmRssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Least total RSS of the processes over `samples` reads 250 ms apart. */
async function quietRss(pids: number[], samples = 9): Promise<number> {
  let least = Infinity;
  for (let i = 0; i < samples; i++) {
    least = Math.min(least, pids.reduce((s, p) => s + vmRssBytes(p), 0));
    await new Promise((r) => setTimeout(r, 250));
  }
  return least;
}

async function sendCorpus(corpus: Array<[string, Buffer]>): Promise<void> {
  const ids: string[] = [];
  for (const [name, body] of corpus) {
    const r = await c.submit(body);
    if (r.status === 202) ids.push(r.body.id);
    else expect([name, r.status >= 400 && r.status < 500]).toEqual([name, true]);
  }
  const ends = await Promise.all(ids.map((id) => c.settled(id)));
  // the valid slice at the end of the corpus still ends done, the rest is rejected
  expect(ends.at(-1)!.status).toBe('done');
  expect(ends.slice(0, -1).every((j) => j.status === 'rejected')).toBe(true);
}

it('server and worker memory after 3 more rounds of hostile input stays within the margin of after 1', async () => {
  const warm = await c.submit(await pngBytes(64));
  expect((await c.settled(warm.body.id)).status).toBe('done');
  const workers = jobWorkers(srv.pid);
  expect(workers).toHaveLength(1);
  const pids = [srv.pid, ...workers];
  const r0 = await quietRss(pids);

  const corpus = await hostileCorpus();
  await sendCorpus(corpus);
  const r1 = await quietRss(pids);
  for (let round = 0; round < 3; round++) await sendCorpus(corpus);
  const r2 = await quietRss(pids);

  process.stderr.write(`memory: R0 ${(r0 / MiB).toFixed(1)} MiB, R1 ${(r1 / MiB).toFixed(1)} MiB, R2 ${(r2 / MiB).toFixed(1)} MiB, R2-R1 ${((r2 - r1) / MiB).toFixed(1)} MiB (margin ${MARGIN / MiB})\n`);
  // the same worker throughout: a replaced worker would hide a leak
  expect(jobWorkers(srv.pid)).toEqual(workers);
  expect(workers.every(alive)).toBe(true);
  expect(r2 - r1).toBeLessThan(MARGIN);
  expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
}, 180_000);
