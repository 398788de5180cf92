/**
 * A real server process on 127.0.0.1 against the threat rows of ../specs/reliability.md §4-5 that apply to this
 * design (tests/reports/service_threats.md says which and how): keys, ownership, limits, headers, logs, uploads
 * named to escape, the bad-input corpus through the API.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, isErrorCode } from '../../core/errors.ts';
import { parseKey } from '../../service/keys.ts';
import { PYDICOM_FILES, requireData } from '../_helpers/testdata.ts';
import { BAD_DICOM, BIN, Client, addKey, addKeyCli, gone, hostileCorpus, pngBytes, startServer, walk, type Srv } from './_server.ts';

let dir: string;
let srv: Srv;
let alice: Client;
let bob: Client;
let carolKey: string;
let daveKey: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gv-threats-'));
  const [a, b] = [addKeyCli(dir, 'alice'), addKey(dir, 'bob')];
  carolKey = addKey(dir, 'carol');
  daveKey = addKey(dir, 'dave');
  srv = await startServer(dir, ['--max-upload-mb', '1', '--rate-limit', '300', '--headers-timeout-s', '1', '--max-active', '20', '--max-queued', '30']);
  alice = new Client(srv.url, a);
  bob = new Client(srv.url, b);
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('S1 authentication', () => {
  it('refuses to start beyond loopback with no keys', () => {
    const empty = mkdtempSync(join(tmpdir(), 'gv-nokeys-'));
    const r = spawnSync(process.execPath, [BIN, 'serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', empty], { encoding: 'utf8', timeout: 30_000 });
    rmSync(empty, { recursive: true, force: true });
    expect(r.status).toBe(ERROR_CODES.config.exit);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 with no API keys/);
  });

  it('rejects missing, wrong and revoked keys with 401', async () => {
    const dave = new Client(srv.url, daveKey);
    expect((await dave.get('/v1/models')).status).toBe(200);
    // A wrong secret for a live key id: refused before the revocation, so the refusal is the secret's.
    const wrong = daveKey.slice(0, -1) + (daveKey.endsWith('x') ? 'y' : 'x');
    expect((await new Client(srv.url, wrong).get('/v1/models')).status).toBe(401);
    const r = spawnSync(process.execPath, [BIN, 'keys', 'revoke', 'dave', '--data-dir', dir], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect((await dave.get('/v1/models')).status).toBe(401);
    const anon = await fetch(`${srv.url}/v1/jobs/${'0'.repeat(32)}`);
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as any).error.code).toBe('unauthorized');
    const list = spawnSync(process.execPath, [BIN, 'keys', 'list', '--json', '--data-dir', dir], { encoding: 'utf8' });
    // The secret is base64url and may itself hold '_', so it is taken by the parser, not by splitting.
    const daveSecret = parseKey(daveKey)!.secret;
    expect(daveSecret).toHaveLength(43);
    expect(list.stdout).not.toContain(daveSecret);
  });
});

describe('jobs', () => {
  let jobId = '';
  it('runs a job to done; results as a listing, a zip and named files; the input is deleted', async () => {
    const sub = await alice.submit(await pngBytes(48));
    expect(sub.status).toBe(202);
    expect(sub.headers.get('location')).toBe(`/v1/jobs/${sub.body.id}`);
    jobId = sub.body.id;
    expect(jobId).toMatch(/^[0-9a-f]{32}$/);
    const done = await alice.settled(jobId);
    expect(done).toMatchObject({ status: 'done', attempts: 1 });
    const listing = await alice.get(`/v1/jobs/${jobId}/result`);
    const names = listing.body.files.map((f: { name: string }) => f.name);
    expect(names).toContain('input.seg.nii.gz');
    const nii = await fetch(`${srv.url}${listing.body.files.find((f: { name: string }) => f.name === 'input.seg.nii.gz').url}`, { headers: alice.headers() });
    expect(nii.status).toBe(200);
    const bytes = Buffer.from(await nii.arrayBuffer());
    expect(bytes.subarray(0, 2).toString('hex')).toBe('1f8b');
    const zip = await fetch(`${srv.url}/v1/jobs/${jobId}/result`, { headers: alice.headers({ accept: 'application/zip' }) });
    expect(zip.headers.get('content-type')).toBe('application/zip');
    expect(Buffer.from(await zip.arrayBuffer()).subarray(0, 2).toString()).toBe('PK');
    expect(await gone(join(dir, 'jobs', jobId))).toBe(true);
    expect(existsSync(join(dir, 'results', jobId, 'input.seg.nii.gz'))).toBe(true);
    expect((await alice.get(`/v1/jobs/${jobId}/result/..%2F..%2Fservice.db`)).status).toBe(404);
  }, 60_000);

  it('S2: another client sees 404 for the job, its results and its deletion', async () => {
    for (const path of [`/v1/jobs/${jobId}`, `/v1/jobs/${jobId}/result`, `/v1/jobs/${jobId}/result/input.seg.nii.gz`]) {
      const r = await bob.get(path);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('not_found');
    }
    const del = await fetch(`${srv.url}/v1/jobs/${jobId}`, { method: 'DELETE', headers: bob.headers() });
    expect(del.status).toBe(404);
    expect((await alice.get(`/v1/jobs/${jobId}`)).status).toBe(200);
  });

  it('S12: DELETE removes the job and its results', async () => {
    const del = await fetch(`${srv.url}/v1/jobs/${jobId}`, { method: 'DELETE', headers: alice.headers() });
    expect(del.status).toBe(204);
    expect((await alice.get(`/v1/jobs/${jobId}`)).status).toBe(404);
    expect(existsSync(join(dir, 'results', jobId))).toBe(false);
  });

  it('S20: the same Idempotency-Key returns the same job; reused for other bytes it is refused', async () => {
    const png = await pngBytes(32, 1);
    const a = await alice.submit(png, undefined, { 'idempotency-key': 'req-1' });
    const b = await alice.submit(png, undefined, { 'idempotency-key': 'req-1' });
    expect(a.status).toBe(202);
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    const c = await alice.submit(await pngBytes(32, 2), undefined, { 'idempotency-key': 'req-1' });
    expect(c.status).toBe(400);
    const other = await bob.submit(png, undefined, { 'idempotency-key': 'req-1' });
    expect(other.body.id).not.toBe(a.body.id);
    await alice.settled(a.body.id);
    await bob.settled(other.body.id);
  }, 60_000);
});

describe('limits and uploads', () => {
  it('G1: an upload over the limit gets 413 (raw and multipart); a many-part body gets 400', async () => {
    const big = Buffer.alloc(1.5 * 2 ** 20, 1);
    const raw = await alice.submit(big);
    expect(raw.status).toBe(413);
    expect(raw.body.error.code).toBe('too_large');
    const form = new FormData();
    form.set('task', 'segment');
    form.set('model', 'brain');
    form.set('file', new Blob([big]), 'x.dcm');
    const mp = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: alice.headers(), body: form });
    expect(mp.status).toBe(413);
    const many = new FormData();
    for (let i = 0; i < 20; i++) many.append(`f${i}`, 'x');
    const r = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: alice.headers(), body: many });
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error.code).toBe('usage');
    expect(readdirNames(join(dir, 'tmp'))).toEqual([]);
  });

  it('G2/S10: an upload named to escape is stored under a random id only', async () => {
    const form = new FormData();
    form.set('task', 'segment');
    form.set('model', 'brain');
    form.set('file', new Blob([await pngBytes(24)]), '../../../escaped.png');
    const r = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: alice.headers(), body: form });
    expect(r.status).toBe(202);
    const id = ((await r.json()) as any).id;
    await alice.settled(id);
    const names = walk(dir);
    expect(names.some((n) => n.includes('escaped'))).toBe(false);
    expect(existsSync(join(dir, '..', 'escaped.png'))).toBe(false);
    for (const n of names) expect(n).toMatch(/^(service\.db(-wal|-shm)?|tmp|jobs|results)(\/[0-9a-f]{32}(\/.*)?)?$/);
  }, 60_000);

  it('S5: the rate limit is per client and ignores X-Forwarded-For', async () => {
    const carol = new Client(srv.url, carolKey);
    const statuses: number[] = [];
    for (let i = 0; i < 301; i++) {
      const res = await fetch(`${srv.url}/v1/models`, { headers: carol.headers({ 'x-forwarded-for': `10.0.${i >> 8}.${i & 255}` }) });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(((await res.json()) as any).error.code).toBe('rate_limited');
      } else await res.arrayBuffer();
    }
    expect(statuses.slice(0, 300).every((s) => s === 200)).toBe(true);
    expect(statuses[300]).toBe(429);
    expect((await alice.get('/v1/models')).status).toBe(200);
    expect(srv.output()).not.toContain('ERR_ERL');
  });

  it('S6: a client that never finishes its headers is cut off', async () => {
    const { port } = new URL(srv.url);
    const outcome = await new Promise<string>((resolve) => {
      const s = connect(Number(port), '127.0.0.1', () => s.write('POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: '));
      let got = '';
      s.on('data', (c) => (got += c.toString()));
      s.on('close', () => resolve(got));
      s.on('error', () => resolve(got));
    });
    expect(outcome === '' || outcome.startsWith('HTTP/1.1 408')).toBe(true);
  }, 30_000);

  it('S14: security headers, no fingerprint, no CORS', async () => {
    const r = await fetch(`${srv.url}/healthz`, { headers: { origin: 'https://elsewhere.example' } });
    expect(r.headers.get('x-powered-by')).toBeNull();
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    expect(r.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
    expect(r.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
  });
});

describe('bad inputs through the API (S8, S11, S7)', () => {
  it('answers each with a typed 4xx, keeps serving, and no patient identifier reaches the logs', async () => {
    const files = BAD_DICOM.map((f) => join(requireData(PYDICOM_FILES), f));
    const inputs = await hostileCorpus();
    const codes: Record<string, string> = {};
    const pending: Array<[string, string]> = [];
    for (const [name, body] of inputs) {
      const r = await alice.submit(body);
      if (r.status === 202) pending.push([name, r.body.id]);
      else {
        expect(r.status, name).toBeGreaterThanOrEqual(400);
        expect(r.status, name).toBeLessThan(500);
        codes[name] = r.body.error.code;
      }
    }
    for (const [name, id] of pending) {
      const j = await alice.settled(id);
      if (name === 'CT_small.dcm') {
        expect(j.status).toBe('done');
        continue;
      }
      expect(j.status, name).toBe('rejected');
      const res = await alice.get(`/v1/jobs/${id}/result`);
      expect(Object.keys(res.body).sort()).toEqual(['error', 'requestId']);
      expect(isErrorCode(res.body.error.code)).toBe(true);
      expect(res.status, name).toBe(ERROR_CODES[res.body.error.code as keyof typeof ERROR_CODES].http);
      expect(res.status, name).toBeLessThan(500);
      expect(JSON.stringify(res.body)).not.toMatch(/\n\s+at |\/work\/|node_modules/);
      codes[name] = res.body.error.code;
    }
    expect(Object.keys(codes)).toHaveLength(inputs.length - 1);
    expect(codes[join(PYDICOM_FILES, 'MR_truncated.dcm')]).toBe('truncated');
    expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
    for (const [, id] of pending) expect(await gone(join(dir, 'jobs', id))).toBe(true);
    expect(readdirNames(join(dir, 'jobs'))).toEqual([]);

    const py = spawnSync('/usr/bin/python3', ['-c', `
import pydicom, sys
for f in sys.argv[1:]:
    d = pydicom.dcmread(f, force=True)
    for k in ('PatientName', 'PatientID', 'StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'InstitutionName'):
        v = str(d.get(k, '') or '')
        if len(v) >= 4: print(v)
`, ...files, join(PYDICOM_FILES, 'CT_small.dcm')], { encoding: 'utf8' });
    const identifiers = py.stdout.split('\n').filter(Boolean);
    expect(identifiers.length).toBeGreaterThan(5);
    const logs = srv.output();
    for (const v of identifiers) expect(logs.includes(v), v).toBe(false);
    expect(logs).not.toMatch(/\.dcm|escaped|rtplan|CT_small/);
    for (const line of logs.split('\n').filter((l) => l.startsWith('{'))) {
      const keys = Object.keys(JSON.parse(line));
      for (const k of keys) expect(['level', 'time', 'pid', 'msg', 'requestId', 'jobId', 'client', 'method', 'route', 'status', 'code', 'ms', 'bytes', 'sha256', 'attempt', 'state', 'outputs', 'workers', 'queued', 'requeued', 'poisoned', 'removed', 'host', 'port', 'workerPid', 'queue', 'signal', 'exitCode']).toContain(k);
    }
  }, 120_000);

  it('S3/S7: metrics need a key and carry counts only', async () => {
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(401);
    const m = await bob.get('/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/gatedvision_jobs\{status="done"\} \d+/);
    expect(m.body).toMatch(/gatedvision_http_requests_total\{operation="createJob",status="202"\} \d+/);
    expect(m.body).not.toMatch(/alice|bob|[0-9a-f]{32}/);
  });
});

function readdirNames(d: string): string[] {
  return existsSync(d) ? walk(d) : [];
}
