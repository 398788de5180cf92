/**
 * Scale-out over BullMQ against a real redis-server on a random 127.0.0.1 port: `serve --queue` plus
 * `gatedvision worker --queue` processes; a worker killed mid-job hands the job on and it ends done once; a site
 * model (`--models-dir`) reaches the workers as its folder.
 * Skipped only when redis-server is not installed on this machine (CI installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shippedModelsDir } from '../../pipelines/task_model.ts';
import { BIN, Client, addKey, alive, childPids, pngBytes, startServer, waitFor, type Srv } from './_server.ts';

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;

let dir: string;
let redis: ChildProcess | undefined;
let queue = '';
let srv: Srv | undefined;
const workers: ChildProcess[] = [];

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

function startWorker(): ChildProcess {
  const w = spawn(process.execPath, [BIN, 'worker', '--queue', queue, '--device', 'cpu', '--lock-s', '3'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  w.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  (w as ChildProcess & { err: () => string }).err = () => err;
  workers.push(w);
  return w;
}

describe.skipIf(!hasRedis)('BullMQ over redis', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gv-redis-'));
    const port = await freePort();
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    queue = `redis://127.0.0.1:${port}`;
    await waitFor(() => (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG' ? true : undefined), 'redis');
  }, 30_000);

  afterAll(async () => {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    if (srv && srv.proc.exitCode === null) await srv.kill9();
    redis?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs jobs on a separate worker process; a worker killed mid-job hands the job on, done exactly once', async () => {
    const key = addKey(dir, 'ward');
    // a site model under a name no shipped model has: a worker that looked it up by name would not find it
    const site = join(dir, 'site-models');
    cpSync(join(shippedModelsDir(), 'brain'), join(site, 'brain_site'), { recursive: true });
    srv = await startServer(dir, ['--queue', queue, '--models-dir', site]);
    const c = new Client(srv.url, key);
    const w1 = startWorker();
    const first = (await c.submit(await pngBytes(48))).body.id;
    expect((await c.settled(first)).status).toBe('done');
    const fromSite = (await c.submit(await pngBytes(40, 1), { task: 'segment', model: 'brain_site' })).body.id;
    expect(await c.settled(fromSite)).toMatchObject({ status: 'done', model: 'brain_site' });

    // the job process of a live worker dies: counted as a crash, re-queued, done on the next attempt
    const one = (await c.submit(await pngBytes(128, 3))).body.id;
    await waitFor(async () => ((await c.get(`/v1/jobs/${one}`)).body.status === 'running' ? true : undefined), 'the job to run', 480, 50);
    const [jobProc] = childPids(w1.pid!);
    process.kill(jobProc!, 'SIGKILL');
    expect(await c.settled(one)).toMatchObject({ status: 'done', attempts: 2 });

    // the whole worker dies: its lock runs out and another worker takes the stalled job over
    const big = (await c.submit(await pngBytes(128, 4))).body.id;
    await waitFor(async () => ((await c.get(`/v1/jobs/${big}`)).body.status === 'running' ? true : undefined), 'the job to run', 480, 50);
    w1.kill('SIGKILL');
    await waitFor(() => (alive(w1.pid!) ? undefined : true), 'the worker to die');
    startWorker();
    const j = await c.settled(big);
    expect(j).toMatchObject({ status: 'done', attempts: 2 });
    const records = readFileSync(join(dir, 'results', big, 'manifest.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"status":"done"'));
    expect(records).toHaveLength(1);

    const bad = (await c.submit(readFileSync('/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_truncated.dcm'))).body.id;
    const b = await c.settled(bad);
    expect(b).toMatchObject({ status: 'rejected', error: { code: 'truncated' } });
    expect(srv.output()).toMatch(/"queue":"redis"/);
    expect(await srv.stop()).toBe(0);
  }, 180_000);
});
