/** One handler per operationId of the OpenAPI document. */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { basename } from 'node:path';
import type { RequestHandler } from 'express';
import { zipSync } from 'fflate';
import { GatedError, reviveGatedError } from '../core/errors.ts';
import type { AppDeps } from './app.ts';
import { OPENAPI, type OperationId } from './openapi.ts';
import { dataPaths, inputPath, isJobId, jobDir, resultDir, resultFile } from './paths.ts';
import type { Job, Task } from './store.ts';
import { extensionFor, receiveUpload } from './upload.ts';
import { randomBytes } from 'node:crypto';

export type { ModelInfo } from './models.ts';

const FORMATS = new Set(['nifti', 'dicom-seg', 'png']);
// strict: a misspelt value is refused, not taken as either choice (one of them costs several times the model time)
const FLAGS = new Map([['true', true], ['1', true], ['false', false], ['0', false]]);

export function handlers(deps: AppDeps): Record<OperationId, RequestHandler> {
  const { store, config, dispatcher, metrics } = deps;
  const paths = dataPaths(config.dataDir);

  const owned = (id: string, client: string): Job => {
    const job = isJobId(id) ? store.getOwned(id, client) : undefined;
    if (!job) throw new GatedError('not_found', 'no such job');
    return job;
  };
  const finished = (job: Job): Job => {
    if (job.status === 'done') return job;
    if (job.status === 'queued' || job.status === 'running') throw new GatedError('not_ready', `the job is ${job.status}`);
    throw reviveGatedError({ code: job.errorCode, message: job.errorMessage });
  };

  return {
    health: (_req, res) => {
      res.json({ status: 'ok' });
    },

    ready: async (_req, res) => {
      store.countByStatus();
      if (!dispatcher.ready()) throw new GatedError('unavailable', 'no worker is available yet');
      if ((await freeBytes(config.dataDir)) < config.minFreeBytes) throw new GatedError('disk_full', 'free disk space is below the watermark');
      res.json({ status: 'ready' });
    },

    openapi: (_req, res) => {
      res.json(OPENAPI);
    },

    metrics: (_req, res) => {
      res.type('text/plain; version=0.0.4').send(metrics.render({ jobs: store.countByStatus() }));
    },

    listModels: async (_req, res) => {
      res.json({ models: await deps.models() });
    },

    createJob: async (req, res) => {
      const client = res.locals.client as string;
      const idem = req.headers['idempotency-key'];
      if (idem !== undefined && (typeof idem !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(idem))) throw new GatedError('usage', 'Idempotency-Key must be 1-128 printable ASCII characters');
      if ((await freeBytes(config.dataDir)) < config.minFreeBytes) throw new GatedError('disk_full', 'free disk space is below the watermark');
      if (store.countByStatus().queued >= config.maxQueued) {
        res.setHeader('Retry-After', '10');
        throw new GatedError('queue_full', `the queue holds ${config.maxQueued} jobs`);
      }
      if (store.activeFor(client) >= config.maxActivePerClient) {
        res.setHeader('Retry-After', '5');
        throw new GatedError('rate_limited', `this client already has ${config.maxActivePerClient} unfinished jobs`);
      }
      const up = await receiveUpload(req, res, paths.tmp, config.maxUploadBytes);
      const id = randomBytes(16).toString('hex');
      try {
        const p = { ...(req.query as Record<string, unknown>), ...up.fields };
        const task = p.task;
        if (task !== 'segment' && task !== 'restore') throw new GatedError('usage', "task must be 'segment' or 'restore'");
        const format = p.format === undefined ? 'nifti' : p.format;
        if (typeof format !== 'string' || !FORMATS.has(format)) throw new GatedError('usage', 'format must be nifti, dicom-seg or png');
        const tta = p.tta === undefined ? false : typeof p.tta === 'string' ? FLAGS.get(p.tta) : undefined;
        if (tta === undefined) throw new GatedError('usage', 'tta must be true, false, 1 or 0');
        const model = (await deps.models()).find((m) => m.name === p.model);
        if (!model) throw new GatedError('unknown_name', 'unknown model; GET /v1/models lists them');
        if (model.task !== task) throw new GatedError('config', `model '${model.name}' is a ${model.task} model`);
        const ext = extensionFor(up.format);
        await mkdir(jobDir(paths, id), { recursive: true, mode: 0o700 });
        await rename(up.path, inputPath(paths, id, ext));
        const { job, created } = store.createJob({ id, client, task, model: model.name, format, tta, inputExt: ext, inputBytes: up.bytes, inputSha256: up.sha256, ...(idem ? { idempotencyKey: idem } : {}) });
        if (!created) {
          await rm(jobDir(paths, id), { recursive: true, force: true });
          if (job.inputSha256 !== up.sha256) throw new GatedError('usage', 'this Idempotency-Key was used for a different upload');
          res.status(200).json(view(job));
          return;
        }
        metrics.uploaded(up.bytes);
        deps.log.info('job accepted', { jobId: job.id, client, bytes: up.bytes, sha256: up.sha256 });
        await dispatcher.submit(job);
        res.status(202).location(`/v1/jobs/${job.id}`).json(view(job));
      } catch (e) {
        await rm(up.path, { force: true });
        if (!store.get(id)) await rm(jobDir(paths, id), { recursive: true, force: true });
        throw e;
      }
    },

    getJob: (req, res) => {
      res.json(view(owned(String(req.params.id), res.locals.client as string)));
    },

    deleteJob: async (req, res) => {
      const job = owned(String(req.params.id), res.locals.client as string);
      if (job.status === 'running') throw new GatedError('not_ready', 'the job is running; delete it after it ends');
      if (!store.deleteUnlessRunning(job.id)) throw new GatedError('not_ready', 'the job started running; delete it after it ends');
      await rm(jobDir(paths, job.id), { recursive: true, force: true });
      await rm(resultDir(paths, job.id), { recursive: true, force: true });
      deps.log.info('job deleted', { jobId: job.id, client: job.client });
      res.status(204).end();
    },

    getResult: async (req, res) => {
      const job = finished(owned(String(req.params.id), res.locals.client as string));
      if (req.accepts(['application/json', 'application/zip']) === 'application/zip') {
        const files: Record<string, Uint8Array> = {};
        for (const name of job.outputs) files[name] = await readFile(resultFile(paths, job.id, name));
        res.type('application/zip').setHeader('Content-Disposition', `attachment; filename="${job.id}.zip"`);
        res.send(Buffer.from(zipSync(files, { level: 6, mtime: new Date(job.endedAt ?? 0) })));
        return;
      }
      const files = [];
      for (const name of job.outputs) files.push({ name, bytes: (await stat(resultFile(paths, job.id, name))).size, url: `/v1/jobs/${job.id}/result/${encodeURIComponent(name)}` });
      res.json({ files });
    },

    getResultFile: (req, res, next) => {
      const job = finished(owned(String(req.params.id), res.locals.client as string));
      const name = String(req.params.file);
      if (!job.outputs.includes(name)) throw new GatedError('not_found', 'no such result file');
      const full = resultFile(paths, job.id, name);
      res.type('application/octet-stream').setHeader('Content-Disposition', `attachment; filename="${basename(name).replace(/[^\w.-]/g, '_')}"`);
      createReadStream(full).on('error', next).pipe(res);
    },
  };
}

export function view(job: Job): Record<string, unknown> {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    id: job.id,
    status: job.status,
    task: job.task,
    model: job.model,
    format: job.format,
    tta: job.tta,
    attempts: job.attempts,
    inputBytes: job.inputBytes,
    inputSha256: job.inputSha256,
    createdAt: iso(job.createdAt),
    startedAt: iso(job.startedAt),
    endedAt: iso(job.endedAt),
    ...(job.errorCode ? { error: { code: job.errorCode, message: job.errorMessage ?? '' } } : {}),
    ...(job.status === 'done' ? { outputs: job.outputs } : {}),
    links: { self: `/v1/jobs/${job.id}`, result: `/v1/jobs/${job.id}/result` },
  };
}

export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}
