/**
 * The OpenAPI 3.1 document: the single source of the service's routes. app.ts registers exactly the
 * operations listed here (by operationId), and the route-inventory test checks the two never drift apart.
 */
import { ERROR_CODES } from '../core/errors.ts';
import { VERSION } from '../core/version.ts';

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const errors = {
  '400': errorResponse('bad request'),
  '401': errorResponse('missing, malformed or revoked API key'),
  '404': errorResponse('no such job for this client'),
  '429': errorResponse('rate limit or queue full; see Retry-After'),
};
const TTA = 'test-time augmentation: restore averages the model over the 8 flips and 90° rotations of each slice, segment over its flips (several times the model time)';
const jobId = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-f]{32}$' } };

export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'gatedvision service', version: VERSION, description: 'Segmentation and restoration jobs for a hospital network. Every route except /healthz and /readyz needs `Authorization: Bearer <key>`.' },
  servers: [{ url: '/' }],
  security: [{ bearer: [] }],
  paths: {
    '/healthz': { get: { operationId: 'health', security: [], summary: 'liveness', responses: { '200': { description: 'alive', content: { 'application/json': { schema: { type: 'object' } } } } } } },
    '/readyz': {
      get: {
        operationId: 'ready',
        security: [],
        summary: 'readiness (store open, workers up, disk above the watermark)',
        responses: { '200': { description: 'ready', content: { 'application/json': { schema: { type: 'object' } } } }, '503': errorResponse('not ready') },
      },
    },
    '/openapi.json': { get: { operationId: 'openapi', summary: 'this document', responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } }, '401': errors['401'] } } },
    '/metrics': { get: { operationId: 'metrics', summary: 'Prometheus text metrics (counts and durations only)', responses: { '200': { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } }, '401': errors['401'] } } },
    '/v1/models': {
      get: {
        operationId: 'listModels',
        summary: 'models the service can run',
        responses: { '200': { description: 'models', content: { 'application/json': { schema: { type: 'object', properties: { models: { type: 'array', items: { $ref: '#/components/schemas/Model' } } } } } } }, '401': errors['401'] },
      },
    },
    '/v1/jobs': {
      post: {
        operationId: 'createJob',
        summary: 'submit one input (DICOM file, zip of a series, NIfTI or image)',
        parameters: [
          { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 128 } },
          { name: 'task', in: 'query', required: false, schema: { $ref: '#/components/schemas/Task' } },
          { name: 'model', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'format', in: 'query', required: false, schema: { $ref: '#/components/schemas/Format' } },
          { name: 'tta', in: 'query', required: false, description: TTA, schema: { $ref: '#/components/schemas/Flag' } },
        ],
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: { type: 'object', required: ['file', 'task', 'model'], properties: { file: { type: 'string', contentMediaType: 'application/octet-stream' }, task: { $ref: '#/components/schemas/Task' }, model: { type: 'string' }, format: { $ref: '#/components/schemas/Format' }, tta: { $ref: '#/components/schemas/Flag', description: TTA } } },
            },
            'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } },
          },
        },
        responses: {
          '200': { description: 'an earlier job with the same Idempotency-Key', content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } } },
          '202': { description: 'accepted and queued', content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } } },
          ...errors,
          '413': errorResponse('upload too large'),
          '415': errorResponse('not a supported input'),
          '503': errorResponse('low on disk space'),
        },
      },
    },
    '/v1/jobs/{id}': {
      get: { operationId: 'getJob', summary: 'job status', parameters: [jobId], responses: { '200': { description: 'the job', content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } } }, ...errors } },
      delete: { operationId: 'deleteJob', summary: 'delete a job, its input and results', parameters: [jobId], responses: { '204': { description: 'deleted' }, '409': errorResponse('the job is running'), ...errors } },
    },
    '/v1/jobs/{id}/result': {
      get: {
        operationId: 'getResult',
        summary: 'result listing (JSON), or every result file as one zip with Accept: application/zip',
        parameters: [jobId],
        responses: {
          '200': {
            description: 'results',
            content: { 'application/json': { schema: { type: 'object', properties: { files: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, bytes: { type: 'integer' }, url: { type: 'string' } } } } } } }, 'application/zip': { schema: { type: 'string', contentMediaType: 'application/zip' } } },
          },
          '409': errorResponse('not finished'),
          ...errors,
        },
      },
    },
    '/v1/jobs/{id}/result/{file}': {
      get: {
        operationId: 'getResultFile',
        summary: 'one result file, by a name from the listing (URL-encoded)',
        parameters: [jobId, { name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { '200': { description: 'the file', content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } }, '409': errorResponse('not finished'), ...errors },
      },
    },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a key from `gatedvision keys add <client>`' } },
    schemas: {
      Task: { type: 'string', enum: ['segment', 'restore'] },
      Format: { type: 'string', enum: ['nifti', 'dicom-seg', 'png'] },
      Flag: { type: 'string', enum: ['true', 'false', '1', '0'], default: 'false' },
      Error: {
        type: 'object',
        required: ['error', 'requestId'],
        additionalProperties: false,
        properties: {
          error: { type: 'object', required: ['code', 'message'], additionalProperties: false, properties: { code: { type: 'string', enum: Object.keys(ERROR_CODES) }, message: { type: 'string' } } },
          requestId: { type: 'string' },
        },
      },
      Job: {
        type: 'object',
        required: ['id', 'status', 'task', 'model', 'attempts', 'createdAt'],
        properties: {
          id: { type: 'string' },
          status: { type: 'string', enum: ['queued', 'running', 'done', 'failed', 'rejected'] },
          task: { $ref: '#/components/schemas/Task' },
          model: { type: 'string' },
          format: { $ref: '#/components/schemas/Format' },
          tta: { type: 'boolean' },
          attempts: { type: 'integer' },
          inputBytes: { type: 'integer' },
          inputSha256: { type: 'string' },
          createdAt: { type: 'string', format: 'date-time' },
          startedAt: { type: ['string', 'null'], format: 'date-time' },
          endedAt: { type: ['string', 'null'], format: 'date-time' },
          error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
          outputs: { type: 'array', items: { type: 'string' } },
          links: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
      Model: { type: 'object', properties: { name: { type: 'string' }, task: { $ref: '#/components/schemas/Task' }, classes: { type: 'array', items: { type: 'string' } }, description: { type: 'string' }, sha256: { type: 'string' }, source: { type: 'string', enum: ['shipped', 'site'] } } },
    },
  },
} as const;

export type OperationId = 'health' | 'ready' | 'openapi' | 'metrics' | 'listModels' | 'createJob' | 'getJob' | 'deleteJob' | 'getResult' | 'getResultFile';

/** Every (method, express path, operationId, public?) of the document. */
export function operations(): Array<{ method: string; path: string; expressPath: string; operationId: OperationId; public: boolean }> {
  const out = [];
  for (const [path, ops] of Object.entries(OPENAPI.paths)) {
    for (const [method, op] of Object.entries(ops as Record<string, { operationId: OperationId; security?: readonly unknown[] }>)) {
      out.push({ method, path, expressPath: path.replace(/\{(\w+)\}/g, ':$1'), operationId: op.operationId, public: Array.isArray(op.security) && op.security.length === 0 });
    }
  }
  return out;
}
