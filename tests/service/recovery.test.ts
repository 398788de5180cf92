/**
 * Crash recovery with real processes: kill -9 of the server (queued and running jobs) and of a worker mid-job,
 * then every accepted job ends done exactly once; a job whose worker dies maxAttempts times is failed as poison
 * while the others finish; the queue bound answers 429 with Retry-After.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLog } from '../../service/log.ts';
import { dataPaths } from '../../service/paths.ts';
import { sweep } from '../../service/server.ts';
import { Store } from '../../service/store.ts';
import { Client, addKey, alive, childPids, gone, pngBytes, startServer, waitFor, walk, type Srv } from './_server.ts';

let dir: string;
let key: string;
const servers: Srv[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gv-recovery-'));
  key = addKey(dir, 'ward');
});
afterAll(async () => {
  for (const s of servers) if (s.proc.exitCode === null) await s.kill9();
  rmSync(dir, { recursive: true, force: true });
});

async function start(extra: string[]): Promise<{ srv: Srv; c: Client }> {
  const srv = await startServer(dir, extra);
  servers.push(srv);
  return { srv, c: new Client(srv.url, key) };
}

/** Each ended job's results hold exactly one run record: the job was finished once. */
function runRecords(id: string): number {
  return readFileSync(join(dir, 'results', id, 'manifest.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"status":"done"')).length;
}

describe('crash recovery', () => {
  it('queue bound, then kill -9 of the server with queued and running jobs: all end done exactly once', async () => {
    // no workers: jobs stay queued, so the bound is reached deterministically
    let { srv, c } = await start(['--workers', '0', '--max-queued', '2']);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await c.submit(await pngBytes(40, i))).body.id);
    const full = await c.submit(await pngBytes(40, 9));
    expect(full.status).toBe(429);
    expect(full.body.error.code).toBe('queue_full');
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await fetch(`${srv.url}/readyz`)).status).toBe(503);
    await srv.kill9();

    ({ srv, c } = await start(['--workers', '1', '--max-queued', '8']));
    ids.push((await c.submit(await pngBytes(192, 3))).body.id);
    // the big one runs last; kill the server while it runs
    await waitFor(async () => ((await c.get(`/v1/jobs/${ids[2]}`)).body.status === 'running' ? true : undefined), 'the job to run', 480, 50);
    const workers = childPids(srv.pid);
    expect(workers.length).toBe(1);
    await srv.kill9();
    await waitFor(() => (workers.every((p) => !alive(p)) ? true : undefined), 'orphaned worker to exit');

    ({ srv, c } = await start(['--workers', '1']));
    for (const id of ids) {
      const j = await c.settled(id);
      expect(j.status, id).toBe('done');
      expect(runRecords(id)).toBe(1);
    }
    expect((await c.get(`/v1/jobs/${ids[2]}`)).body.attempts).toBe(2);
    expect(walk(join(dir, 'jobs'))).toEqual([]);
    expect(walk(join(dir, 'tmp'))).toEqual([]);
    expect(srv.output()).toMatch(/"requeued":1/);
    await srv.stop();
  }, 180_000);

  it('kill -9 of a worker mid-job: the job is re-run and done once; poison after maxAttempts deaths, others finish', async () => {
    const { srv, c } = await start(['--workers', '1', '--max-attempts', '2']);
    const killRunning = async (id: string) => {
      await waitFor(async () => ((await c.get(`/v1/jobs/${id}`)).body.status === 'running' ? true : undefined), 'the job to run', 480, 50);
      const [pid] = await waitFor(() => (childPids(srv.pid).length ? childPids(srv.pid) : undefined), 'a worker');
      process.kill(pid!, 'SIGKILL');
      await waitFor(() => (alive(pid!) ? undefined : true), 'the worker to die');
    };
    const once = (await c.submit(await pngBytes(192, 5))).body.id;
    await killRunning(once);
    const j = await c.settled(once);
    expect(j).toMatchObject({ status: 'done', attempts: 2 });
    expect(runRecords(once)).toBe(1);

    const poison = (await c.submit(await pngBytes(192, 6))).body.id;
    await killRunning(poison);
    await killRunning(poison);
    const after = (await c.submit(await pngBytes(40, 7))).body.id;
    const p = await c.settled(poison);
    expect(p).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'worker_crashed' } });
    expect(p.error.message).toMatch(/poison/);
    expect(await gone(join(dir, 'jobs', poison))).toBe(true);
    expect((await c.settled(after)).status).toBe('done');
    const m = await c.get('/metrics');
    expect(m.body).toMatch(/gatedvision_worker_crashes_total 3/);
    expect(await srv.stop()).toBe(0);
  }, 180_000);

  it('a job past its wall clock is stopped with a typed timeout, and the next job still runs', async () => {
    const { srv, c } = await start(['--workers', '1', '--job-timeout-s', '1']);
    const slow = (await c.submit(await pngBytes(256, 8))).body.id;
    const t = await c.settled(slow);
    expect(t).toMatchObject({ status: 'rejected', attempts: 1, error: { code: 'timeout' } });
    const r = await c.get(`/v1/jobs/${slow}/result`);
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('timeout');
    expect(await gone(join(dir, 'jobs', slow))).toBe(true);
    expect(await srv.stop()).toBe(0);
  }, 120_000);

  it('sweeps results past the TTL', async () => {
    const store = new Store(dir);
    try {
      const done = store.idsWithStatus('done');
      expect(done.length).toBeGreaterThan(0);
      expect(await sweep(store, dataPaths(dir), 3600_000, silentLog)).toBe(0);
      const ended = store.idsWithStatus('done', 'failed', 'rejected').length;
      expect(await sweep(store, dataPaths(dir), -1, silentLog)).toBe(ended);
      for (const id of done) expect(existsSync(join(dir, 'results', id))).toBe(false);
      expect(store.idsWithStatus('done', 'failed')).toEqual([]);
    } finally {
      store.close();
    }
  });
});
