/** `gatedvision serve`: the hospital-side REST service (see README "Service"). */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';
import { DEFAULT_CONFIG, resolveConfig, type ServiceConfig } from '../service/config.ts';
import { createLog } from '../service/log.ts';
import { startService } from '../service/server.ts';
import { DEFAULT_DATA_DIR } from './keys.ts';

export const serveCommand = defineCommand({
  meta: { name: 'serve', description: 'Run the REST service (jobs in SQLite under --data-dir; API keys from `gatedvision keys`)' },
  args: {
    host: { type: 'string', description: 'address to listen on (non-loopback needs at least one API key)', default: DEFAULT_CONFIG.host },
    port: { type: 'string', description: 'port (0 picks a free one)', default: String(DEFAULT_CONFIG.port) },
    'data-dir': { type: 'string', description: 'state folder (database, uploads, results)', default: DEFAULT_DATA_DIR },
    'models-dir': { type: 'string', description: 'folder of site task models (one folder each, from `gatedvision train`), offered next to the shipped ones' },
    queue: { type: 'string', description: 'redis://host:port to hand jobs to `gatedvision worker` processes over BullMQ' },
    workers: { type: 'string', description: 'embedded worker processes (0: accept and queue only)', default: String(DEFAULT_CONFIG.workers) },
    device: { type: 'string', description: 'auto | webgpu | wasm | cpu | tensorflow', default: DEFAULT_CONFIG.device },
    'max-upload-mb': { type: 'string', description: 'largest upload (MiB)', default: String(DEFAULT_CONFIG.maxUploadBytes / 2 ** 20) },
    'max-queued': { type: 'string', description: 'queue bound (429 beyond it)', default: String(DEFAULT_CONFIG.maxQueued) },
    'max-active': { type: 'string', description: 'unfinished jobs per client', default: String(DEFAULT_CONFIG.maxActivePerClient) },
    'rate-limit': { type: 'string', description: 'requests per client per minute', default: String(DEFAULT_CONFIG.rateLimit) },
    'min-free-mb': { type: 'string', description: 'free-disk watermark (503 below it)', default: String(DEFAULT_CONFIG.minFreeBytes / 2 ** 20) },
    'max-pixels': { type: 'string', description: 'largest 2D image a job may decode (pixels)', default: String(DEFAULT_CONFIG.limits.maxImagePixels) },
    'max-zip-entries': { type: 'string', description: 'most entries in an uploaded zip', default: String(DEFAULT_CONFIG.limits.maxZipEntries) },
    'max-inflated-mb': { type: 'string', description: 'largest decompressed payload of one input (MiB)', default: String((DEFAULT_CONFIG.limits.maxInflatedBytes ?? 0) / 2 ** 20) },
    'job-timeout-s': { type: 'string', description: 'wall clock of one job', default: String(DEFAULT_CONFIG.jobTimeoutMs / 1000) },
    'worker-heap-mb': { type: 'string', description: 'heap cap of each worker process', default: String(DEFAULT_CONFIG.workerHeapMb) },
    'max-attempts': { type: 'string', description: 'worker deaths before a job is failed as poison', default: String(DEFAULT_CONFIG.maxAttempts) },
    'result-ttl-h': { type: 'string', description: 'hours results are kept', default: String(DEFAULT_CONFIG.resultTtlMs / 3600_000) },
    'sweep-s': { type: 'string', description: 'seconds between result sweeps', default: String(DEFAULT_CONFIG.sweepEveryMs / 1000) },
    'headers-timeout-s': { type: 'string', description: 'time allowed for request headers', default: String(DEFAULT_CONFIG.headersTimeoutMs / 1000) },
    'request-timeout-s': { type: 'string', description: 'time allowed for a whole request (uploads included)', default: String(DEFAULT_CONFIG.requestTimeoutMs / 1000) },
    'trust-proxy': { type: 'string', description: 'reverse-proxy hops in front of the service', default: '0' },
    'log-level': { type: 'string', description: 'info | warn | error', default: 'info' },
  },
  async run({ args }) {
    const num = (name: string, v: string, min = 0): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < min) throw new GatedError('usage', `--${name} must be a number >= ${min}`);
      return n;
    };
    const MiB = 2 ** 20;
    const device = args.device as ServiceConfig['device'];
    if (!['auto', 'webgpu', 'wasm', 'cpu', 'tensorflow'].includes(device)) throw new GatedError('usage', '--device must be auto, webgpu, wasm, cpu or tensorflow');
    if (args.queue !== undefined && !/^rediss?:\/\//.test(args.queue)) throw new GatedError('usage', '--queue must be a redis:// URL');
    const config = resolveConfig({
      dataDir: args['data-dir'],
      host: args.host,
      port: num('port', args.port),
      ...(args.queue ? { queueUrl: args.queue } : {}),
      ...(args['models-dir'] ? { modelsDir: args['models-dir'] } : {}),
      workers: num('workers', args.workers, 0),
      device,
      maxUploadBytes: num('max-upload-mb', args['max-upload-mb'], 0) * MiB,
      maxQueued: num('max-queued', args['max-queued'], 1),
      maxActivePerClient: num('max-active', args['max-active'], 1),
      rateLimit: num('rate-limit', args['rate-limit'], 1),
      minFreeBytes: num('min-free-mb', args['min-free-mb']) * MiB,
      limits: { maxImagePixels: num('max-pixels', args['max-pixels'], 1), maxZipEntries: num('max-zip-entries', args['max-zip-entries'], 1), maxInflatedBytes: num('max-inflated-mb', args['max-inflated-mb'], 1) * MiB },
      jobTimeoutMs: num('job-timeout-s', args['job-timeout-s'], 1) * 1000,
      workerHeapMb: num('worker-heap-mb', args['worker-heap-mb'], 64),
      maxAttempts: num('max-attempts', args['max-attempts'], 1),
      resultTtlMs: num('result-ttl-h', args['result-ttl-h']) * 3600_000,
      sweepEveryMs: num('sweep-s', args['sweep-s'], 1) * 1000,
      headersTimeoutMs: num('headers-timeout-s', args['headers-timeout-s'], 1) * 1000,
      requestTimeoutMs: num('request-timeout-s', args['request-timeout-s'], 1) * 1000,
      trustProxyHops: num('trust-proxy', args['trust-proxy']),
    });
    const log = createLog({ level: args['log-level'] });
    const svc = await startService(config, log);
    process.stderr.write(`gatedvision service listening on ${svc.url}\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info('stopping', { signal });
        void svc.close().then(resolve, resolve);
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  },
});
