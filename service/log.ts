/**
 * Structured logs that cannot carry patient data: every event passes through an allowlist of field names
 * (ids, sizes, hashes, codes, durations). Messages are fixed strings chosen in code, never request content.
 */
import { pino, type Logger } from 'pino';

const ALLOWED = new Set([
  'requestId', 'jobId', 'client', 'method', 'route', 'status', 'code', 'ms', 'bytes', 'sha256', 'attempt', 'attempts',
  'state', 'outputs', 'workers', 'queued', 'requeued', 'poisoned', 'removed', 'host', 'port', 'pid', 'workerPid', 'rssMb', 'queue', 'signal', 'exitCode',
]);

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface ServiceLog {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export function createLog(opts: { level?: string; destination?: NodeJS.WritableStream } = {}): ServiceLog {
  const base: Logger = pino({ level: opts.level ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, (opts.destination ?? process.stdout) as never);
  const emit = (lvl: 'info' | 'warn' | 'error') => (msg: string, fields: LogFields = {}) => base[lvl](allow(fields), msg);
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}

export const silentLog: ServiceLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Drops every field not on the allowlist, and strings that are long enough to be free text. */
export function allow(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (!ALLOWED.has(k) || v === undefined) continue;
    if (typeof v === 'string' && v.length > 80) continue;
    out[k] = v;
  }
  return out;
}

/** Long dotted numbers are DICOM UIDs; they never leave in an error body or a stored message even if a reader quoted one. */
export function scrub(message: string): string {
  return message.replace(/\b\d+(?:\.\d+){3,}\b/g, '<uid>').slice(0, 300);
}
