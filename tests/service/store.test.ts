import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store, type NewJob } from '../../service/store.ts';
import { parseKey } from '../../service/keys.ts';

let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gv-store-'));
  store = new Store(dir);
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const job = (client = 'a', extra: Partial<NewJob> = {}): NewJob => ({ id: randomBytes(16).toString('hex'), client, task: 'segment', model: 'brain', format: 'nifti', inputExt: '.png', inputBytes: 10, inputSha256: 'ab'.repeat(32), ...extra });

describe('API keys', () => {
  it('stores only a hash, authenticates the key and nothing close to it, and revokes', () => {
    const { token, keyId } = store.addKey('ward-3');
    expect(parseKey(token)?.keyId).toBe(keyId);
    store.close();
    const raw = readFileSync(join(dir, 'service.db')).toString('latin1');
    expect(raw.includes(keyId)).toBe(true);
    expect(raw.includes(parseKey(token)!.secret)).toBe(false);
    store = new Store(dir);
    expect(store.authenticate(token)).toBe('ward-3');
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    expect(store.authenticate(token.slice(0, -1) + last)).toBeUndefined();
    expect(store.authenticate('')).toBeUndefined();
    expect(store.authenticate(`Bearer ${token}`)).toBeUndefined();
    expect(store.activeKeyCount()).toBe(1);
    expect(store.revoke('ward-3')).toBe(1);
    expect(store.authenticate(token)).toBeUndefined();
    expect(store.listKeys()[0]).toMatchObject({ client: 'ward-3', keyId, revokedAt: expect.any(Number) });
  });

  it('refuses client names that could carry text into logs', () => {
    expect(() => store.addKey('a b')).toThrow(/client name/);
    expect(() => store.addKey('../x')).toThrow(/client name/);
  });
});

describe('job state machine', () => {
  it('queued → running → done once; a stale attempt cannot finish it', () => {
    const { job: j } = store.createJob(job());
    expect(j.status).toBe('queued');
    const r1 = store.claimNext()!;
    expect(r1).toMatchObject({ id: j.id, status: 'running', attempts: 1 });
    expect(store.claimNext()).toBeUndefined();
    expect(store.crashed(j.id, 1, 3)).toBe('queued');
    const r2 = store.claimNext()!;
    expect(r2.attempts).toBe(2);
    expect(store.finishDone(j.id, 1, ['x'])).toBe(false);
    expect(store.finishDone(j.id, 2, ['x'])).toBe(true);
    expect(store.finishDone(j.id, 2, ['x'])).toBe(false);
    expect(store.get(j.id)).toMatchObject({ status: 'done', outputs: ['x'], attempts: 2 });
  });

  it('fails a job as poison after maxAttempts worker deaths', () => {
    const { job: j } = store.createJob(job());
    for (let a = 1; a <= 3; a++) {
      expect(store.claimNext()?.attempts).toBe(a);
      expect(store.crashed(j.id, a, 3)).toBe(a < 3 ? 'queued' : 'failed');
    }
    expect(store.get(j.id)).toMatchObject({ status: 'failed', errorCode: 'worker_crashed', attempts: 3 });
    expect(store.claimNext()).toBeUndefined();
  });

  it('re-queues running jobs at start-up, poisoning those out of attempts', () => {
    const a = store.createJob(job()).job;
    const b = store.createJob(job()).job;
    store.claimNext();
    store.claimNext();
    store.crashed(b.id, 1, 3);
    store.claimNext();
    expect(store.recoverRunning(2)).toEqual({ requeued: 1, poisoned: 1 });
    expect(store.get(a.id)?.status).toBe('queued');
    expect(store.get(b.id)?.status).toBe('failed');
  });

  it('honours idempotency keys per client and hides jobs from other clients', () => {
    const first = store.createJob(job('a', { idempotencyKey: 'k1' }));
    const again = store.createJob(job('a', { idempotencyKey: 'k1' }));
    const other = store.createJob(job('b', { idempotencyKey: 'k1' }));
    expect(first.created).toBe(true);
    expect(again).toMatchObject({ created: false, job: { id: first.job.id } });
    expect(other.created).toBe(true);
    expect(store.getOwned(first.job.id, 'b')).toBeUndefined();
    expect(store.getOwned(first.job.id, 'a')?.id).toBe(first.job.id);
    expect(store.activeFor('a')).toBe(1);
  });

  it('lists ended jobs past the TTL and never deletes a running job', () => {
    const j = store.createJob(job()).job;
    store.claimNext();
    expect(store.deleteUnlessRunning(j.id)).toBe(false);
    store.finishError(j.id, 1, 'rejected', 'truncated', 'short');
    expect(store.expired(Date.now() + 10, 0)).toEqual([j.id]);
    expect(store.expired(Date.now(), 3600_000)).toEqual([]);
    expect(store.deleteUnlessRunning(j.id)).toBe(true);
  });
});

describe('shutdown', () => {
  it('releases a running job without counting the attempt', () => {
    const j = store.createJob(job()).job;
    store.claimNext();
    expect(store.release(j.id, 2)).toBe(false);
    expect(store.release(j.id, 1)).toBe(true);
    expect(store.get(j.id)).toMatchObject({ status: 'queued', attempts: 0 });
  });
});
