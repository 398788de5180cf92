/**
 * Everything the service can be told: where it keeps its state, how much it accepts and how it runs jobs.
 * Defaults follow ../specs (reliability §6.6) and suit one workstation next to a PACS.
 */
import type { Limits } from '../core/limits.ts';

const MiB = 1024 ** 2;

export interface ServiceConfig {
  dataDir: string;
  host: string;
  port: number;
  /** A folder of the site's own task models (one folder each, as `gatedvision train` writes them), offered next to the shipped ones. */
  modelsDir?: string;
  /** `redis://...` to hand jobs to BullMQ workers instead of the embedded child-process pool. */
  queueUrl?: string;
  /** Largest upload, in bytes (multipart file or raw body). */
  maxUploadBytes: number;
  /** Most queued jobs over all clients; beyond it POST /v1/jobs answers 429 queue_full. */
  maxQueued: number;
  /** Most unfinished (queued + running) jobs per client. */
  maxActivePerClient: number;
  /** Requests per client per rate window. */
  rateLimit: number;
  rateWindowMs: number;
  /** Free bytes below which uploads are refused with 503 disk_full. */
  minFreeBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Embedded workers: child processes, their heap cap and the wall clock of one job. */
  workers: number;
  workerHeapMb: number;
  jobTimeoutMs: number;
  /** A job whose worker dies this many times is failed as poison. */
  maxAttempts: number;
  /** How long results are kept after a job ends, and how often the sweeper runs. */
  resultTtlMs: number;
  sweepEveryMs: number;
  /** Reader caps for each job (pixel count, zip entries, inflated size), passed to the readers of every job. */
  limits: Partial<Limits>;
  device: 'auto' | 'webgpu' | 'wasm' | 'cpu' | 'tensorflow';
  /** Reverse-proxy hops in front of the service (express "trust proxy"); never `true`. */
  trustProxyHops: number;
}

export const DEFAULT_CONFIG: Readonly<Omit<ServiceConfig, 'dataDir'>> = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  maxUploadBytes: 512 * MiB,
  maxQueued: 32,
  maxActivePerClient: 8,
  rateLimit: 600,
  rateWindowMs: 60_000,
  minFreeBytes: 1024 * MiB,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 600_000,
  keepAliveTimeoutMs: 5_000,
  workers: 1,
  workerHeapMb: 4096,
  jobTimeoutMs: 900_000,
  maxAttempts: 3,
  resultTtlMs: 24 * 3600_000,
  sweepEveryMs: 60_000,
  limits: { maxImagePixels: 50_000_000, maxZipEntries: 20_000, maxInflatedBytes: 2 * 1024 * MiB },
  device: 'auto',
  trustProxyHops: 0,
});

export function resolveConfig(overrides: Partial<ServiceConfig> & { dataDir: string }): ServiceConfig {
  return { ...DEFAULT_CONFIG, ...overrides, limits: { ...DEFAULT_CONFIG.limits, ...overrides.limits } };
}
