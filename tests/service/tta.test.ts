/**
 * `tta` on POST /v1/jobs: parsed strictly at the edge (a bad value is 400 usage and leaves nothing behind), stored
 * with the job and shown in its view, and carried to the pipelines (a served restore equals the in-process one with
 * the same option, and differs from the one without). A database file from before the column opens and reads its
 * jobs as `tta: false`.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInput } from '../../io/load.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { restoreFile } from '../../pipelines/restore.ts';
import { saveTaskModel, type TaskModel } from '../../pipelines/task_model.ts';
import { createApp } from '../../service/app.ts';
import { resolveConfig } from '../../service/config.ts';
import { silentLog } from '../../service/log.ts';
import { Metrics } from '../../service/metrics.ts';
import { Store } from '../../service/store.ts';
import { tinyRestoreModel } from '../_helpers/restore_model.ts';
import { Client, addKey, pngBytes, startServer, walk, type Srv } from './_server.ts';

let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'gv-tta-'));
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

/** 64 x 32 and without mirror or rotation symmetry, so each of the 8 views gives the model a different image. */
async function asymmetricPng(): Promise<Buffer> {
  const [w, h] = [64, 32];
  const px = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = (3 * x + 7 * y + ((x * x + 3 * y) % 13) * 9 + (x < 20 && y < 10 ? 90 : 0)) & 255;
  return sharp(px, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer();
}

async function pixels(path: string): Promise<Buffer> {
  const v = (await loadInput(path, { sandbox: false })).volumes[0]!;
  return Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
}

describe('parsing at the edge (in-process app)', () => {
  let dir: string;
  let store: Store;
  let server: Server;
  let base: string;
  let key: string;
  const submitted: string[] = [];

  beforeAll(async () => {
    dir = join(root, 'edge');
    store = new Store(dir);
    key = store.addKey('ward').token;
    for (const d of ['tmp', 'jobs', 'results']) mkdirSync(join(dir, d));
    const config = resolveConfig({ dataDir: dir, minFreeBytes: 0, rateLimit: 1000 });
    const dispatcher = { submit: async (j: { id: string }) => void submitted.push(j.id), ready: () => true, close: async () => undefined };
    const models = async () => [{ name: 'denoise_tta', task: 'restore' as const, classes: [], description: 'd', sha256: 'x', source: 'site' as const }];
    server = createApp({ store, config, log: silentLog, metrics: new Metrics(), dispatcher, models }).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server?.close();
    store?.close();
  });

  const auth = () => ({ authorization: `Bearer ${key}` });
  const raw = async (query: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}/v1/jobs?task=restore&model=denoise_tta${query}`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/octet-stream', ...headers }, body: await pngBytes(32) });
    return { status: res.status, body: (await res.json()) as any };
  };

  it('refuses anything but true/false/1/0 with 400 usage, as a query parameter or a form field, and keeps nothing', async () => {
    for (const q of ['&tta=maybe', '&tta=', '&tta=TRUE', '&tta=yes', '&tta=1&tta=1']) {
      const r = await raw(q);
      expect([r.status, r.body.error?.code], q).toEqual([400, 'usage']);
      expect(r.body.error.message, q).toMatch(/tta/);
    }
    const form = new FormData();
    form.set('task', 'restore');
    form.set('model', 'denoise_tta');
    form.set('tta', 'maybe');
    form.set('file', new Blob([await pngBytes(32)]), 'x.png');
    const mp = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: auth(), body: form });
    expect(mp.status).toBe(400);
    expect(((await mp.json()) as any).error.code).toBe('usage');
    expect(submitted).toEqual([]);
    expect(store.countByStatus()).toEqual({ queued: 0, running: 0, done: 0, failed: 0, rejected: 0 });
    expect(walk(join(dir, 'tmp'))).toEqual([]);
    expect(walk(join(dir, 'jobs'))).toEqual([]);
  });

  it('stores the flag with the job and shows it in the job view; absent is false', async () => {
    const cases: Array<[string, boolean]> = [['&tta=true', true], ['&tta=1', true], ['&tta=false', false], ['&tta=0', false], ['', false]];
    for (const [q, want] of cases) {
      const r = await raw(q);
      expect(r.status, q).toBe(202);
      expect(r.body.tta, q).toBe(want);
      expect(store.get(r.body.id)?.tta, q).toBe(want);
      const got = (await (await fetch(`${base}/v1/jobs/${r.body.id}`, { headers: auth() })).json()) as any;
      expect(got.tta, q).toBe(want);
    }
    expect(submitted.length).toBe(cases.length);
  });

  it('answers a repeated Idempotency-Key with the same bytes with the stored job', async () => {
    const first = await raw('&tta=true', { 'idempotency-key': 'tta-once' });
    const again = await raw('&tta=true', { 'idempotency-key': 'tta-once' });
    expect(first.status).toBe(202);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, tta: true });
  });
});

describe('jobs with tta through a real server', () => {
  let model: TaskModel;
  let srv: Srv;
  let c: Client;
  let data: string;

  beforeAll(async () => {
    await selectDevice('cpu');
    const modelsDir = join(root, 'site-models');
    model = tinyRestoreModel('denoise_tta');
    await saveTaskModel(join(modelsDir, 'denoise_tta'), model);
    data = join(root, 'data');
    mkdirSync(data);
    srv = await startServer(data, ['--models-dir', modelsDir]);
    c = new Client(srv.url, addKey(data, 'ward'));
  }, 120_000);
  afterAll(async () => {
    await srv?.stop();
    model?.dispose();
  });

  it('restores with the 8 flips and rotations averaged when asked, as restoreFile({ tta: true }) does', async () => {
    const png = await asymmetricPng();
    const form = new FormData();
    form.set('task', 'restore');
    form.set('model', 'denoise_tta');
    form.set('tta', 'true');
    form.set('file', new Blob([png]), 'in.png');
    const viaForm = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: c.headers(), body: form });
    expect(viaForm.status).toBe(202);
    const plain = await c.submit(png, { task: 'restore', model: 'denoise_tta' });
    expect([plain.status, plain.body.tta]).toEqual([202, false]);
    const ids = { tta: ((await viaForm.json()) as any).id as string, plain: plain.body.id as string };

    const served: Record<string, Buffer> = {};
    for (const [k, id] of Object.entries(ids)) {
      const j = await c.settled(id);
      expect(j, k).toMatchObject({ status: 'done', tta: k === 'tta' });
      const listing = await c.get(`/v1/jobs/${id}/result`);
      const file = listing.body.files.find((f: { name: string }) => f.name.endsWith('.png'));
      expect(file, k).toBeDefined();
      const res = await fetch(srv.url + file.url, { headers: c.headers() });
      writeFileSync(join(root, `served-${k}.png`), Buffer.from(await res.arrayBuffer()));
      served[k] = await pixels(join(root, `served-${k}.png`));
    }

    const input = join(root, 'in.png');
    writeFileSync(input, png);
    await restoreFile(input, join(root, 'local-tta'), model, { tta: true });
    await restoreFile(input, join(root, 'local-plain'), model);
    const localTta = await pixels(join(root, 'local-tta', 'in.png'));
    const localPlain = await pixels(join(root, 'local-plain', 'in.png'));
    let differ = 0;
    for (let i = 0; i < localTta.length; i++) if (localTta[i] !== localPlain[i]) differ++;
    // otherwise the comparisons below could not tell the two apart
    expect(differ).toBeGreaterThan(localTta.length / 20);
    expect(served.tta!.equals(localTta)).toBe(true);
    expect(served.plain!.equals(localPlain)).toBe(true);
  }, 120_000);

  it('runs a segment job with tta: its run record carries the setting', async () => {
    const r = await c.submit(await pngBytes(40), { task: 'segment', model: 'brain', format: 'png', tta: 'true' });
    expect([r.status, r.body.tta]).toEqual([202, true]);
    expect((await c.settled(r.body.id)).status).toBe('done');
    const records = readFileSync(join(data, 'results', r.body.id, 'manifest.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(records.map((x) => [x.status, x.settings?.tta])).toEqual([['done', true]]);
  }, 120_000);
});

describe('a database from before the tta column', () => {
  it('opens, gains the column, and reads the old job as tta: false', () => {
    const dir = join(root, 'old-db');
    mkdirSync(dir);
    const old = new Database(join(dir, 'service.db'));
    old.exec(`
      CREATE TABLE keys (key_id TEXT PRIMARY KEY, client TEXT NOT NULL, hash BLOB NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY, client TEXT NOT NULL, status TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL,
        format TEXT NOT NULL, input_ext TEXT NOT NULL, input_bytes INTEGER NOT NULL, input_sha256 TEXT NOT NULL,
        idem_key TEXT, attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT, outputs TEXT,
        created_at INTEGER NOT NULL, started_at INTEGER, ended_at INTEGER,
        UNIQUE (client, idem_key)
      );`);
    const oldId = 'a'.repeat(32);
    old.prepare("INSERT INTO jobs (id, client, status, task, model, format, input_ext, input_bytes, input_sha256, idem_key, created_at) VALUES (?, 'ward', 'queued', 'restore', 'denoise', 'nifti', '.png', 10, ?, 'k-old', ?)").run(oldId, 'ab'.repeat(32), Date.now());
    old.close();

    let store = new Store(dir);
    try {
      const cols = store.db.prepare('PRAGMA table_info(jobs)').all() as Array<{ name: string; notnull: number; dflt_value: string | null }>;
      expect(cols.find((col) => col.name === 'tta')).toMatchObject({ notnull: 1, dflt_value: '0' });
      expect(store.get(oldId)).toMatchObject({ id: oldId, status: 'queued', tta: false });
      expect(store.claimNext()).toMatchObject({ id: oldId, tta: false, attempts: 1 });
      const { job } = store.createJob({ id: 'b'.repeat(32), client: 'ward', task: 'restore', model: 'denoise', format: 'nifti', tta: true, inputExt: '.png', inputBytes: 10, inputSha256: 'cd'.repeat(32) });
      expect(job.tta).toBe(true);
    } finally {
      store.close();
    }
    // opening it again finds the column there and changes nothing
    store = new Store(dir);
    try {
      expect((store.db.prepare('PRAGMA table_info(jobs)').all() as Array<{ name: string }>).filter((col) => col.name === 'tta').length).toBe(1);
      expect([store.get(oldId)?.tta, store.get('b'.repeat(32))?.tta]).toEqual([false, true]);
    } finally {
      store.close();
    }
  });
});
