/**
 * Starts the service: opens the store, cleans what a dead process left behind, re-queues interrupted jobs,
 * starts the workers, then listens with request and header timeouts. Refuses to listen beyond loopback
 * while no API key exists (fail closed).
 */
import { createServer, type Server } from 'node:http';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { GatedError } from '../core/errors.ts';
import { createApp } from './app.ts';
import type { ServiceConfig } from './config.ts';
import type { Dispatcher } from './dispatch.ts';
import type { FinishDeps } from './finish.ts';
import type { ServiceLog } from './log.ts';
import { Metrics } from './metrics.ts';
import { dataPaths, isJobId, jobDir, resultDir, type DataPaths } from './paths.ts';
import { WorkerPool } from './pool.ts';
import { loadCatalogue, type ModelCatalogue } from './models.ts';
import { Store } from './store.ts';

export interface RunningService {
  server: Server;
  url: string;
  store: Store;
  dispatcher: Dispatcher;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function startService(config: ServiceConfig, log: ServiceLog): Promise<RunningService> {
  const paths = dataPaths(config.dataDir);
  const store = new Store(paths.root);
  try {
    if (!isLoopback(config.host) && store.activeKeyCount() === 0) {
      throw new GatedError('config', `refusing to listen on ${config.host} with no API keys; add one with \`gatedvision keys add <client> --data-dir ${config.dataDir}\` or listen on 127.0.0.1`);
    }
    const recovered = store.recoverRunning(config.maxAttempts);
    const removed = await cleanLeftovers(store, paths);
    log.info('recovered', { requeued: recovered.requeued, poisoned: recovered.poisoned, removed });
  } catch (e) {
    store.close();
    throw e;
  }
  let catalogue: ModelCatalogue;
  try {
    catalogue = await loadCatalogue(config.modelsDir);
  } catch (e) {
    store.close();
    throw e;
  }
  const metrics = new Metrics();
  const finish: FinishDeps = { store, paths, log, metrics };
  let dispatcher: Dispatcher;
  if (config.queueUrl) {
    const { RedisDispatcher } = await import('./queue_redis.ts');
    dispatcher = await RedisDispatcher.start(finish, config, catalogue.dirOf);
  } else {
    const pool = new WorkerPool(finish, config, catalogue.dirOf);
    pool.start();
    dispatcher = pool;
  }
  const models = async () => catalogue.list();
  const app = createApp({ store, config, log, metrics, dispatcher, models });
  const server = createServer({ headersTimeout: config.headersTimeoutMs, requestTimeout: config.requestTimeoutMs, keepAliveTimeout: config.keepAliveTimeoutMs, connectionsCheckingInterval: Math.min(30_000, Math.max(250, config.headersTimeoutMs / 4)) }, app);
  server.maxHeadersCount = 100;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new GatedError('config', `cannot listen on ${config.host}:${config.port} (${(e as NodeJS.ErrnoException).code})`)));
    server.listen(config.port, config.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  const sweeper = setInterval(() => void sweep(store, paths, config.resultTtlMs, log), config.sweepEveryMs);
  sweeper.unref();
  log.info('listening', { host: addr.address, port: addr.port, workers: config.queueUrl ? 0 : config.workers, queue: config.queueUrl ? 'redis' : 'embedded' });
  return {
    server,
    url,
    store,
    dispatcher,
    async close() {
      clearInterval(sweeper);
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeIdleConnections();
      });
      await dispatcher.close();
      store.close();
    },
  };
}

/** Ended jobs past the TTL lose their results and their record. */
export async function sweep(store: Store, paths: DataPaths, ttlMs: number, log: ServiceLog): Promise<number> {
  const ids = store.expired(Date.now(), ttlMs);
  for (const id of ids) {
    await rm(resultDir(paths, id), { recursive: true, force: true });
    await rm(jobDir(paths, id), { recursive: true, force: true });
    store.delete(id);
  }
  if (ids.length) log.info('swept', { removed: ids.length });
  return ids.length;
}

// --- internal ---

/** Upload temp files, folders of jobs that no longer run and results without a finished job. */
async function cleanLeftovers(store: Store, paths: DataPaths): Promise<number> {
  let removed = 0;
  await rm(paths.tmp, { recursive: true, force: true });
  for (const d of [paths.tmp, paths.jobs, paths.results]) await mkdir(d, { recursive: true, mode: 0o700 });
  for (const name of await readdir(paths.jobs)) {
    const job = isJobId(name) ? store.get(name) : undefined;
    if (!job || (job.status !== 'queued' && job.status !== 'running')) {
      await rm(join(paths.jobs, name), { recursive: true, force: true });
      removed++;
      continue;
    }
    for (const sub of await readdir(join(paths.jobs, name))) {
      if (sub.startsWith('work-')) {
        await rm(join(paths.jobs, name, sub), { recursive: true, force: true });
        removed++;
      }
    }
  }
  for (const name of await readdir(paths.results)) {
    const job = isJobId(name) ? store.get(name) : undefined;
    if (!job || job.status !== 'done') {
      await rm(join(paths.results, name), { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}
