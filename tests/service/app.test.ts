/** The app factory in-process: the OpenAPI document, the route inventory, auth and the error shape. */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../core/errors.ts';
import { createApp } from '../../service/app.ts';
import { resolveConfig } from '../../service/config.ts';
import { silentLog } from '../../service/log.ts';
import { Metrics } from '../../service/metrics.ts';
import { OPENAPI, operations } from '../../service/openapi.ts';
import { Store } from '../../service/store.ts';

let dir: string;
let store: Store;
let server: Server;
let base: string;
let key: string;
let app: ReturnType<typeof createApp>;
const submitted: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gv-app-'));
  store = new Store(dir);
  key = store.addKey('ward').token;
  const config = resolveConfig({ dataDir: dir, minFreeBytes: 0, rateLimit: 1000 });
  const dispatcher = { submit: async (j: { id: string }) => void submitted.push(j.id), ready: () => true, close: async () => undefined };
  const models = async () => [{ name: 'brain', task: 'segment' as const, classes: ['background', 'brain'], description: 'd', sha256: 'x', source: 'shipped' as const }];
  app = createApp({ store, config, log: silentLog, metrics: new Metrics(), dispatcher, models });
  const { mkdirSync } = await import('node:fs');
  for (const d of ['tmp', 'jobs', 'results']) mkdirSync(join(dir, d));
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server?.close();
  store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const auth = () => ({ authorization: `Bearer ${key}` });

describe('OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document, served at /openapi.json', async () => {
    const res = await new Validator().validate(structuredClone(OPENAPI) as never);
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);
    const served = await (await fetch(`${base}/openapi.json`, { headers: auth() })).json();
    expect(served).toEqual(JSON.parse(JSON.stringify(OPENAPI)));
  });

  it('lists exactly the routes express serves (route inventory)', () => {
    const stack = (app as unknown as { router: { stack: Array<{ route?: { path: string; methods: Record<string, boolean> } }> } }).router.stack;
    const served = stack.filter((l) => l.route).flatMap((l) => Object.keys(l.route!.methods).map((m) => `${m.toUpperCase()} ${l.route!.path}`)).sort();
    const documented = operations().map((o) => `${o.method.toUpperCase()} ${o.expressPath}`).sort();
    expect(served).toEqual(documented);
    expect(documented).toContain('POST /v1/jobs');
    expect(documented).toContain('GET /v1/jobs/:id/result/:file');
  });

  it('names only error codes that exist, and only health routes are public', () => {
    expect(OPENAPI.components.schemas.Error.properties.error.properties.code.enum).toEqual(Object.keys(ERROR_CODES));
    expect(operations().filter((o) => o.public).map((o) => o.path).sort()).toEqual(['/healthz', '/readyz']);
  });
});

describe('requests', () => {
  it('answers 401 without a valid key on every non-public route, in the one error shape', async () => {
    for (const op of operations().filter((o) => !o.public)) {
      const url = base + op.path.replace('{id}', '0'.repeat(32)).replace('{file}', 'x');
      for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: `Basic ${key}` }] as Array<Record<string, string>>) {
        const res = await fetch(url, { method: op.method.toUpperCase(), headers });
        expect(res.status, `${op.method} ${op.path}`).toBe(401);
        const body = (await res.json()) as any;
        expect(Object.keys(body).sort()).toEqual(['error', 'requestId']);
        expect(body.error.code).toBe('unauthorized');
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
      }
    }
  });

  it('sets helmet headers, no x-powered-by and no CORS headers', async () => {
    const res = await fetch(`${base}/healthz`, { headers: { origin: 'https://evil.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-powered-by')).toBeNull();
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age/);
    const pre = await fetch(`${base}/v1/jobs`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('accepts a raw-body upload with query parameters and a multipart upload; refuses unknown content', async () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const raw = await fetch(`${base}/v1/jobs?task=segment&model=brain`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/octet-stream' }, body: png });
    expect(raw.status).toBe(202);
    const j = (await raw.json()) as any;
    expect(j).toMatchObject({ status: 'queued', task: 'segment', model: 'brain', format: 'nifti', inputBytes: png.length });
    expect(submitted).toContain(j.id);
    const form = new FormData();
    form.set('task', 'segment');
    form.set('model', 'brain');
    form.set('format', 'png');
    form.set('file', new Blob([png]), '../../etc/passwd');
    const mp = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: auth(), body: form });
    expect(mp.status).toBe(202);
    expect(((await mp.json()) as any).format).toBe('png');
    const bad = await fetch(`${base}/v1/jobs?task=segment&model=brain`, { method: 'POST', headers: auth(), body: 'hello' });
    expect(bad.status).toBe(415);
    expect(((await bad.json()) as any).error.code).toBe('unsupported_format');
    const unknown = await fetch(`${base}/v1/jobs?task=segment&model=../../x`, { method: 'POST', headers: auth(), body: png });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as any).error.code).toBe('unknown_name');
    const result = await fetch(`${base}/v1/jobs/${j.id}/result`, { headers: auth() });
    expect(result.status).toBe(409);
    expect(((await result.json()) as any).error.code).toBe('not_ready');
  });
});

describe('disk watermark', () => {
  it('answers 503 disk_full with Retry-After on uploads and readiness when free space is below it', async () => {
    const config = resolveConfig({ dataDir: dir, minFreeBytes: Number.MAX_SAFE_INTEGER });
    const dispatcher = { submit: async () => undefined, ready: () => true, close: async () => undefined };
    const full = createApp({ store, config, log: silentLog, metrics: new Metrics(), dispatcher, models: async () => [] });
    const s = full.listen(0, '127.0.0.1');
    await new Promise((r) => s.once('listening', r));
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    try {
      const up = await fetch(`${url}/v1/jobs?task=segment&model=brain`, { method: 'POST', headers: auth(), body: Buffer.from('89504e470d0a1a0a', 'hex') });
      expect(up.status).toBe(503);
      expect(up.headers.get('retry-after')).toBe('60');
      expect(((await up.json()) as any).error.code).toBe('disk_full');
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(503);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    } finally {
      s.close();
    }
  });
});
