/**
 * The service's durable state in one SQLite file (WAL): API keys and jobs. Every state change of a job is one
 * guarded UPDATE, so a job that was re-queued after a crash can never be finished twice by a stale attempt.
 *
 * queued → running → done | failed | rejected; running → queued again when its worker dies (attempts < max).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GatedError } from '../core/errors.ts';
import { checkClientName, newKey, parseKey, secretMatches } from './keys.ts';

export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'rejected';
export type Task = 'segment' | 'restore';

export interface Job {
  id: string;
  client: string;
  status: JobStatus;
  task: Task;
  model: string;
  format: string;
  /** Test-time augmentation: restore averages the 8 flips and rotations, segment its flips. */
  tta: boolean;
  inputExt: string;
  inputBytes: number;
  inputSha256: string;
  attempts: number;
  errorCode: string | null;
  errorMessage: string | null;
  outputs: string[];
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

/** A job as submitted: its id is 128-bit random hex, chosen by the caller so the input can be moved into place before the row exists. */
export type NewJob = Pick<Job, 'id' | 'client' | 'task' | 'model' | 'format' | 'inputExt' | 'inputBytes' | 'inputSha256'> & { tta?: boolean; idempotencyKey?: string };

export interface KeyInfo {
  client: string;
  keyId: string;
  createdAt: number;
  revokedAt: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS keys (
  key_id TEXT PRIMARY KEY, client TEXT NOT NULL, hash BLOB NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, client TEXT NOT NULL, status TEXT NOT NULL, task TEXT NOT NULL, model TEXT NOT NULL,
  format TEXT NOT NULL, input_ext TEXT NOT NULL, input_bytes INTEGER NOT NULL, input_sha256 TEXT NOT NULL,
  idem_key TEXT, attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT, outputs TEXT,
  created_at INTEGER NOT NULL, started_at INTEGER, ended_at INTEGER, tta INTEGER NOT NULL DEFAULT 0,
  UNIQUE (client, idem_key)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_client ON jobs (client, status);
`;

export class Store {
  readonly db: Database.Database;
  readonly dataDir: string;

  constructor(dataDir: string) {
    this.dataDir = dataDir;
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dataDir, 'service.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.#migrate();
  }

  close(): void {
    this.db.close();
  }

  /**
   * Columns added since the first schema; CREATE TABLE IF NOT EXISTS leaves an older file as it was. Checked again
   * under the write lock, as a second process (the server and `keys add`) may be adding the same column.
   */
  #migrate(): void {
    const has = (name: string) => (this.db.prepare('PRAGMA table_info(jobs)').all() as Array<{ name: string }>).some((c) => c.name === name);
    if (has('tta')) return;
    this.db.transaction(() => {
      if (!has('tta')) this.db.exec('ALTER TABLE jobs ADD COLUMN tta INTEGER NOT NULL DEFAULT 0');
    }).immediate();
  }

  // --- keys ---

  addKey(client: string): { token: string; keyId: string } {
    if (!checkClientName(client)) throw new GatedError('usage', 'a client name is 1-64 letters, digits, dot, dash or underscore');
    const k = newKey();
    this.db.prepare('INSERT INTO keys (key_id, client, hash, created_at) VALUES (?, ?, ?, ?)').run(k.keyId, client, k.hash, Date.now());
    return { token: k.token, keyId: k.keyId };
  }

  /** Revokes every key of a client, or one key by its id; returns how many were revoked. */
  revoke(clientOrKeyId: string): number {
    return this.db.prepare('UPDATE keys SET revoked_at = ? WHERE (client = ? OR key_id = ?) AND revoked_at IS NULL').run(Date.now(), clientOrKeyId, clientOrKeyId).changes;
  }

  listKeys(): KeyInfo[] {
    return (this.db.prepare('SELECT client, key_id, created_at, revoked_at FROM keys ORDER BY client, created_at').all() as Array<Record<string, unknown>>).map((r) => ({
      client: r.client as string,
      keyId: r.key_id as string,
      createdAt: r.created_at as number,
      revokedAt: (r.revoked_at as number | null) ?? null,
    }));
  }

  activeKeyCount(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM keys WHERE revoked_at IS NULL').get() as { n: number }).n;
  }

  /** The client a bearer token belongs to, or undefined for unknown, malformed or revoked keys. */
  authenticate(token: string): string | undefined {
    const parsed = parseKey(token);
    if (!parsed) return undefined;
    const row = this.db.prepare('SELECT client, hash FROM keys WHERE key_id = ? AND revoked_at IS NULL').get(parsed.keyId) as { client: string; hash: Buffer } | undefined;
    if (!row) return undefined;
    return secretMatches(parsed.secret, row.hash) ? row.client : undefined;
  }

  // --- jobs ---

  /** Inserts a queued job; with an idempotency key already used by this client, returns that job instead. */
  createJob(j: NewJob): { job: Job; created: boolean } {
    return this.db.transaction(() => {
      if (j.idempotencyKey) {
        const prior = this.db.prepare('SELECT * FROM jobs WHERE client = ? AND idem_key = ?').get(j.client, j.idempotencyKey);
        if (prior) return { job: toJob(prior), created: false };
      }
      const id = j.id;
      this.db
        .prepare('INSERT INTO jobs (id, client, status, task, model, format, tta, input_ext, input_bytes, input_sha256, idem_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, j.client, 'queued', j.task, j.model, j.format, j.tta ? 1 : 0, j.inputExt, j.inputBytes, j.inputSha256, j.idempotencyKey ?? null, Date.now());
      return { job: this.get(id)!, created: true };
    })();
  }

  get(id: string): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id);
    return r ? toJob(r) : undefined;
  }

  /** A job as its owner sees it; another client's job does not exist for the caller. */
  getOwned(id: string, client: string): Job | undefined {
    const r = this.db.prepare('SELECT * FROM jobs WHERE id = ? AND client = ?').get(id, client);
    return r ? toJob(r) : undefined;
  }

  /** Oldest queued job → running, attempt counted. */
  claimNext(): Job | undefined {
    return this.db.transaction(() => {
      const r = this.db.prepare("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1").get() as { id: string } | undefined;
      if (!r) return undefined;
      return this.markRunning(r.id);
    })();
  }

  /** queued → running for one job (used by the redis path, where the queue picks the job). */
  markRunning(id: string): Job | undefined {
    const changes = this.db.prepare("UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ? WHERE id = ? AND status = 'queued'").run(Date.now(), id).changes;
    return changes ? this.get(id) : undefined;
  }

  /** running → done; false when the attempt is stale (the job was re-queued or already ended). */
  finishDone(id: string, attempt: number, outputs: string[]): boolean {
    return (
      this.db
        .prepare("UPDATE jobs SET status = 'done', outputs = ?, ended_at = ?, error_code = NULL, error_message = NULL WHERE id = ? AND status = 'running' AND attempts = ?")
        .run(JSON.stringify(outputs), Date.now(), id, attempt).changes === 1
    );
  }

  /** running → rejected (the input's fault) or failed (ours or the environment's). */
  finishError(id: string, attempt: number, status: 'failed' | 'rejected', code: string, message: string): boolean {
    return this.db.prepare('UPDATE jobs SET status = ?, error_code = ?, error_message = ?, ended_at = ? WHERE id = ? AND status = ? AND attempts = ?').run(status, code, message.slice(0, 500), Date.now(), id, 'running', attempt).changes === 1;
  }

  /** The worker died under this job: back to the queue, or failed as poison after maxAttempts. */
  crashed(id: string, attempt: number, maxAttempts: number): JobStatus | undefined {
    const j = this.get(id);
    if (!j || j.status !== 'running' || j.attempts !== attempt) return undefined;
    if (j.attempts >= maxAttempts) {
      this.finishError(id, attempt, 'failed', 'worker_crashed', `poison: the worker died on each of ${j.attempts} attempts`);
      return 'failed';
    }
    this.db.prepare("UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ? AND status = 'running' AND attempts = ?").run(id, attempt);
    return 'queued';
  }

  /** An orderly shutdown interrupted the attempt: back to the queue without counting it. */
  release(id: string, attempt: number): boolean {
    return this.db.prepare("UPDATE jobs SET status = 'queued', attempts = attempts - 1, started_at = NULL WHERE id = ? AND status = 'running' AND attempts = ?").run(id, attempt).changes === 1;
  }

  /** At start-up: jobs left running by a dead process go back to the queue (or fail as poison). */
  recoverRunning(maxAttempts: number): { requeued: number; poisoned: number } {
    let requeued = 0;
    let poisoned = 0;
    for (const r of this.db.prepare("SELECT id, attempts FROM jobs WHERE status = 'running'").all() as Array<{ id: string; attempts: number }>) {
      if (this.crashed(r.id, r.attempts, maxAttempts) === 'failed') poisoned++;
      else requeued++;
    }
    return { requeued, poisoned };
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM jobs WHERE id = ?').run(id);
  }

  /** Deletes a job unless a worker holds it; false when it is running. */
  deleteUnlessRunning(id: string): boolean {
    return this.db.prepare("DELETE FROM jobs WHERE id = ? AND status != 'running'").run(id).changes === 1;
  }

  countByStatus(): Record<JobStatus, number> {
    const out: Record<JobStatus, number> = { queued: 0, running: 0, done: 0, failed: 0, rejected: 0 };
    for (const r of this.db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as Array<{ status: JobStatus; n: number }>) out[r.status] = r.n;
    return out;
  }

  activeFor(client: string): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM jobs WHERE client = ? AND status IN ('queued', 'running')").get(client) as { n: number }).n;
  }

  idsWithStatus(...statuses: JobStatus[]): string[] {
    return (this.db.prepare(`SELECT id FROM jobs WHERE status IN (${statuses.map(() => '?').join(',')}) ORDER BY created_at`).all(...statuses) as Array<{ id: string }>).map((r) => r.id);
  }

  /** Ended jobs older than the result TTL. */
  expired(now: number, ttlMs: number): string[] {
    return (this.db.prepare("SELECT id FROM jobs WHERE status IN ('done', 'failed', 'rejected') AND ended_at < ?").all(now - ttlMs) as Array<{ id: string }>).map((r) => r.id);
  }
}

// --- internal ---

function toJob(raw: unknown): Job {
  const r = raw as Record<string, unknown>;
  return {
    id: r.id as string,
    client: r.client as string,
    status: r.status as JobStatus,
    task: r.task as Task,
    model: r.model as string,
    format: r.format as string,
    tta: r.tta === 1,
    inputExt: r.input_ext as string,
    inputBytes: r.input_bytes as number,
    inputSha256: r.input_sha256 as string,
    attempts: r.attempts as number,
    errorCode: (r.error_code as string | null) ?? null,
    errorMessage: (r.error_message as string | null) ?? null,
    outputs: r.outputs ? (JSON.parse(r.outputs as string) as string[]) : [],
    createdAt: r.created_at as number,
    startedAt: (r.started_at as number | null) ?? null,
    endedAt: (r.ended_at as number | null) ?? null,
  };
}
