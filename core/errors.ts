/**
 * One error type for the whole project. Every failure a user can cause carries a stable string code;
 * the code alone decides the CLI exit status and the HTTP status (mapped here, nowhere else).
 */

/** Stable codes. Adding one is fine; renaming one breaks users' scripts. */
export const ERROR_CODES = {
  // input that is not what it claims to be
  not_dicom: { exit: 3, http: 415, hint: 'pass a DICOM Part 10 file (with the DICM preamble), a folder or a zip of them' },
  not_nifti: { exit: 3, http: 415, hint: 'pass a .nii or .nii.gz file (NIfTI-1 or NIfTI-2)' },
  not_image: { exit: 3, http: 415, hint: 'pass a PNG, JPEG, TIFF or WebP image' },
  unsupported_format: { exit: 3, http: 415, hint: 'supported inputs: DICOM file/folder/zip, NIfTI (.nii/.nii.gz), PNG/JPEG/TIFF/WebP' },
  unsupported_transfer_syntax: { exit: 3, http: 415, hint: 'transcode the file to explicit VR little endian (e.g. dcmconv +te) and retry' },
  unsupported_datatype: { exit: 3, http: 415, hint: 'convert the volume to an integer or float datatype' },
  // input that is damaged or inconsistent
  truncated: { exit: 3, http: 422, hint: 'the file ends early; copy it again from the source' },
  bad_length: { exit: 3, http: 422, hint: 'an element length points past the end of the data; the file is corrupt' },
  nesting: { exit: 3, http: 422, hint: 'sequences nest deeper than 64 levels; the file is corrupt or hostile' },
  meta_missing_ts: { exit: 3, http: 422, hint: 'the file meta header has no TransferSyntaxUID (0002,0010)' },
  no_pixel_data: { exit: 3, http: 422, hint: 'the DICOM object holds no image (PixelData absent)' },
  bad_geometry: { exit: 3, http: 422, hint: 'the image dimensions or orientation tags are inconsistent' },
  series_inconsistent: { exit: 3, http: 422, hint: 'the files do not form one volume; pass one series at a time' },
  decode_failed: { exit: 3, http: 422, hint: 'the compressed pixel data could not be decoded' },
  bad_extension: { exit: 3, http: 422, hint: 'a NIfTI header extension is malformed' },
  bad_vox_offset: { exit: 3, http: 422, hint: 'the NIfTI vox_offset does not point inside the file' },
  bad_dims: { exit: 3, http: 422, hint: 'the NIfTI dim/pixdim fields are invalid' },
  corrupt_image: { exit: 3, http: 422, hint: 'the image file is damaged' },
  bad_archive: { exit: 3, http: 422, hint: 'the zip archive is damaged, encrypted or unsupported' },
  zip_path: { exit: 3, http: 422, hint: 'the zip holds an entry whose name escapes the archive; it is refused whole' },
  corrupt_weights: { exit: 3, http: 422, hint: 'the model weights do not match their manifest checksum; fetch the model again' },
  // input that is too big for the configured limits
  too_large: { exit: 4, http: 413, hint: 'the input exceeds the configured size limit; raise the limit only for trusted data' },
  too_many_pixels: { exit: 4, http: 413, hint: 'the image has more pixels than the configured limit' },
  decompressed_too_large: { exit: 4, http: 413, hint: 'the data inflates past the configured limit (possible decompression bomb)' },
  timeout: { exit: 4, http: 422, hint: 'reading the input took longer than the time limit' },
  // caller mistakes
  usage: { exit: 2, http: 400, hint: 'see `gatedvision --help`' },
  not_found: { exit: 5, http: 404, hint: 'check the path' },
  unknown_name: { exit: 2, http: 400, hint: 'list the known names with `gatedvision models`' },
  config: { exit: 2, http: 400, hint: 'check the options' },
  shape: { exit: 2, http: 400, hint: 'check the tensor shapes' },
  geometry_mismatch: { exit: 2, http: 400, hint: 'the prediction must lie on the reference grid (same shape and affine); resample it first' },
  // service: who may call, and how much
  unauthorized: { exit: 2, http: 401, hint: 'send Authorization: Bearer <key>; keys are made with `gatedvision keys add <client>`' },
  rate_limited: { exit: 8, http: 429, hint: 'too many requests from this client; retry after the Retry-After seconds' },
  queue_full: { exit: 8, http: 429, hint: 'the job queue is full; retry after the Retry-After seconds' },
  disk_full: { exit: 6, http: 503, hint: 'the server is low on disk space; retry later' },
  unavailable: { exit: 6, http: 503, hint: 'the service is starting or shutting down; retry later' },
  not_ready: { exit: 5, http: 409, hint: 'the job has not finished; poll GET /v1/jobs/{id} until its status is done' },
  // environment and internals
  io_error: { exit: 6, http: 500, hint: 'check permissions and free disk space' },
  missing_dependency: { exit: 6, http: 500, hint: 'install the optional package named in the message' },
  worker_crashed: { exit: 3, http: 422, hint: 'the decoder crashed on this input; it was isolated and nothing else was affected' },
  kernel: { exit: 7, http: 500, hint: 'a GPU kernel failed; retry with --device wasm' },
  internal: { exit: 70, http: 500, hint: 'this is a bug; please report it with the input attached if you can' },
} as const satisfies Record<string, { exit: number; http: number; hint: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface GatedErrorOptions {
  cause?: unknown;
  /** Safe, PHI-free details for the caller (sizes, tags, file indices). */
  details?: Record<string, unknown>;
}

export class GatedError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, opts: GatedErrorOptions = {}) {
    super(message, { cause: opts.cause });
    this.name = 'GatedError';
    this.code = code;
    this.details = opts.details;
  }
  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }
  get hint(): string {
    return ERROR_CODES[this.code].hint;
  }
  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/**
 * Turns anything thrown (strings, plain objects, TypeErrors from third-party parsers) into a GatedError.
 * Libraries such as dicom-parser throw bare strings and `{exception, dataSet}` objects; callers must never
 * see `undefined` as a message.
 */
export function toGatedError(thrown: unknown, fallback: ErrorCode = 'internal', context?: string): GatedError {
  if (thrown instanceof GatedError) return thrown;
  const prefix = context ? `${context}: ` : '';
  if (typeof thrown === 'string') return new GatedError(fallback, prefix + thrown, { cause: thrown });
  if (thrown instanceof RangeError && /call stack/i.test(thrown.message)) {
    return new GatedError('nesting', `${prefix}structure nests too deeply`, { cause: thrown });
  }
  if (thrown instanceof Error) {
    const code = (thrown as { code?: unknown }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') return new GatedError('decompressed_too_large', prefix + thrown.message, { cause: thrown });
    if (code === 'ENOENT') return new GatedError('not_found', prefix + thrown.message, { cause: thrown });
    if (code === 'EACCES' || code === 'ENOSPC' || code === 'EISDIR') return new GatedError('io_error', prefix + thrown.message, { cause: thrown });
    return new GatedError(fallback, prefix + (thrown.message || thrown.name), { cause: thrown });
  }
  if (thrown && typeof thrown === 'object') {
    const obj = thrown as { exception?: unknown; message?: unknown };
    const inner = obj.exception ?? obj.message;
    if (inner !== undefined) return toGatedError(inner, fallback, context);
    return new GatedError(fallback, `${prefix}${safeStringify(thrown)}`, { cause: thrown });
  }
  return new GatedError(fallback, `${prefix}${String(thrown)}`, { cause: thrown });
}

/** Rebuilds a GatedError that crossed a process boundary as plain JSON. */
export function reviveGatedError(json: { code?: unknown; message?: unknown; details?: unknown }): GatedError {
  const code = isErrorCode(json.code) ? json.code : 'internal';
  const details = json.details && typeof json.details === 'object' ? (json.details as Record<string, unknown>) : undefined;
  return new GatedError(code, typeof json.message === 'string' ? json.message : 'unknown error', details ? { details } : {});
}

// --- internal ---

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value).slice(0, 200);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
