/**
 * Receives one upload into a random file under tmp/, counting bytes (413 past the limit), hashing as it goes
 * and sniffing the format from the first bytes. Multipart bodies go through multer with tight part limits;
 * the client's file name is never read.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import multer from 'multer';
import { GatedError } from '../core/errors.ts';
import { sniffFormat, type SniffedFormat } from '../io/sniff.ts';

export interface Upload {
  path: string;
  bytes: number;
  sha256: string;
  format: SniffedFormat;
  /** Text fields of a multipart body (task, model, format). */
  fields: Record<string, string>;
}

const EXT: Partial<Record<SniffedFormat, string>> = { dicom: '.dcm', nifti: '.nii', gzip: '.nii.gz', zip: '.zip', png: '.png', jpeg: '.jpg', tiff: '.tif', webp: '.webp' };

/** The extension the readers expect for a sniffed format; unknown content is refused here. */
export function extensionFor(format: SniffedFormat): string {
  const ext = EXT[format];
  if (!ext) throw new GatedError('unsupported_format', 'the upload is not DICOM, a zip, NIfTI or a PNG/JPEG/TIFF/WebP image');
  return ext;
}

export async function receiveUpload(req: Request, res: Response, tmpDir: string, maxBytes: number): Promise<Upload> {
  const type = req.headers['content-type'] ?? '';
  const path = join(tmpDir, randomBytes(16).toString('hex'));
  try {
    if (/^multipart\/form-data/i.test(type)) return await receiveMultipart(req, res, path, maxBytes);
    return await receiveRaw(req, path, maxBytes);
  } catch (e) {
    await rm(path, { force: true });
    throw e;
  }
}

// --- internal ---

async function receiveRaw(req: Request, path: string, maxBytes: number): Promise<Upload> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw new GatedError('too_large', `the upload is ${declared} bytes; the limit is ${maxBytes}`);
  const hash = createHash('sha256');
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > maxBytes) return cb(new GatedError('too_large', `the upload exceeds the limit of ${maxBytes} bytes`));
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  await pipeline(req, counter, createWriteStream(path, { mode: 0o600 }));
  if (bytes === 0) throw new GatedError('usage', 'the request body is empty; send the file as the body or in multipart field "file"');
  return { path, bytes, sha256: hash.digest('hex'), format: await sniffFile(path), fields: {} };
}

async function receiveMultipart(req: Request, res: Response, path: string, maxBytes: number): Promise<Upload> {
  const hash = createHash('sha256');
  let bytes = 0;
  let seen = false;
  const storage: multer.StorageEngine = {
    _handleFile(_req, file, cb) {
      if (file.fieldname !== 'file' || seen) {
        file.stream.resume();
        return cb(new GatedError('usage', 'send exactly one file, in multipart field "file"'));
      }
      seen = true;
      const out = createWriteStream(path, { mode: 0o600 });
      file.stream.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      pipeline(file.stream, out).then(() => cb(null, { size: bytes }), cb);
    },
    _removeFile(_req, _file, cb) {
      rm(path, { force: true }).then(() => cb(null), cb);
    },
  };
  const mw = multer({ storage, limits: { fileSize: maxBytes, files: 1, fields: 8, parts: 10, fieldSize: 1024, fieldNameSize: 64, headerPairs: 200 } }).single('file');
  await new Promise<void>((resolve, reject) => mw(req, res, (err?: unknown) => (err ? reject(multerError(err)) : resolve())));
  if (!seen) throw new GatedError('usage', 'multipart body without a "file" field');
  if (bytes === 0) throw new GatedError('usage', 'the uploaded file is empty');
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries((req.body ?? {}) as Record<string, unknown>)) if (typeof v === 'string') fields[k] = v;
  return { path, bytes, sha256: hash.digest('hex'), format: await sniffFile(path), fields };
}

function multerError(err: unknown): unknown {
  if (err instanceof multer.MulterError) {
    if (err.code === 'LIMIT_FILE_SIZE') return new GatedError('too_large', 'the uploaded file exceeds the size limit');
    return new GatedError('usage', `multipart body refused (${err.code})`);
  }
  if (err instanceof GatedError) return err;
  // busboy reports malformed bodies as plain Errors
  return new GatedError('usage', 'the multipart body is malformed');
}

async function sniffFile(path: string): Promise<SniffedFormat> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(352);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return sniffFormat(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}
