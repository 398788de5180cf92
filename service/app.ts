/**
 * The express application, built from the OpenAPI document (one handler per operationId) and kept apart from
 * listen() so tests and the server start it the same way. Errors reach the client in one shape,
 * `{error: {code, message}, requestId}`, with the HTTP status of the code in core/errors.ts.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import { GatedError, toGatedError } from '../core/errors.ts';
import type { ServiceConfig } from './config.ts';
import type { Dispatcher } from './dispatch.ts';
import { scrub, type ServiceLog } from './log.ts';
import type { Metrics } from './metrics.ts';
import { operations, type OperationId } from './openapi.ts';
import { handlers, type ModelInfo } from './routes.ts';
import type { Store } from './store.ts';

export interface AppDeps {
  store: Store;
  config: ServiceConfig;
  log: ServiceLog;
  metrics: Metrics;
  dispatcher: Dispatcher;
  models: () => Promise<ModelInfo[]>;
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.trustProxyHops > 0 ? deps.config.trustProxyHops : false);
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(helmet());
  app.use(requestContext(deps));

  const auth = authenticate(deps.store);
  const limiter = rateLimit({
    windowMs: deps.config.rateWindowMs,
    limit: deps.config.rateLimit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    // after authentication, so the bucket is the client and not a (spoofable) address
    keyGenerator: (_req, res) => String(res.locals.client),
    handler: (req, res, next) => {
      const reset = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      res.setHeader('Retry-After', String(Math.max(1, Math.ceil(((reset?.getTime() ?? Date.now() + 1000) - Date.now()) / 1000))));
      next(new GatedError('rate_limited', 'too many requests from this client'));
    },
  });

  const table = handlers(deps);
  for (const op of operations()) {
    const h = table[op.operationId as OperationId];
    const chain: RequestHandler[] = [named(op.operationId)];
    if (!op.public) chain.push(auth, limiter);
    chain.push(h);
    (app as unknown as Record<string, (path: string, ...h: RequestHandler[]) => void>)[op.method]!(op.expressPath, ...chain);
  }
  app.use((_req, _res, next) => next(new GatedError('not_found', 'no such route')));
  app.use(errorHandler(deps));
  return app;
}

// --- internal ---

function named(operation: string): RequestHandler {
  return (_req, res, next) => {
    res.locals.operation = operation;
    next();
  };
}

function requestContext(deps: AppDeps): RequestHandler {
  return (req, res, next) => {
    const requestId = randomUUID();
    const t0 = process.hrtime.bigint();
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    res.on('finish', () => {
      const op = String(res.locals.operation ?? 'unmatched');
      deps.metrics.request(op, res.statusCode);
      deps.log.info('request', { requestId, route: op, method: req.method, status: res.statusCode, client: res.locals.client as string | undefined, ms: Number(process.hrtime.bigint() - t0) / 1e6, code: res.locals.errorCode as string | undefined });
    });
    next();
  };
}

function authenticate(store: Store): RequestHandler {
  return (req, res, next) => {
    const m = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? '');
    const client = m ? store.authenticate(m[1]!) : undefined;
    if (!client) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return next(new GatedError('unauthorized', m ? 'the API key is not valid' : 'an API key is required (Authorization: Bearer <key>)'));
    }
    res.locals.client = client;
    next();
  };
}

function errorHandler(deps: AppDeps) {
  return (thrown: unknown, _req: Request, res: Response, _next: NextFunction) => {
    let err = toGatedError(thrown, 'internal');
    const status = (thrown as { status?: number; type?: string }).status;
    if (!(thrown instanceof GatedError) && status === 413) err = new GatedError('too_large', 'the request body is too large');
    else if (!(thrown instanceof GatedError) && status && status >= 400 && status < 500) err = new GatedError('usage', 'the request is malformed');
    const http = err.httpStatus;
    const message = err.code === 'internal' ? 'internal error' : scrub(err.message);
    if (err.code === 'internal' || http >= 500) deps.log.error('request failed', { requestId: res.locals.requestId as string, code: err.code });
    res.locals.errorCode = err.code;
    if ((http === 429 || http === 503) && !res.getHeader('Retry-After')) res.setHeader('Retry-After', err.code === 'disk_full' ? '60' : '5');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(http).json({ error: { code: err.code, message }, requestId: res.locals.requestId as string });
  };
}
