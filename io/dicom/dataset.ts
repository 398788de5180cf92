/**
 * A DICOM Part 10 file as data sets: the file meta header and the body, both walked by our own bounded
 * walker (walk.ts) and exposed through dicom-parser's DataSet accessors. Deflated bodies are inflated
 * here with an output cap; the transfer syntax is looked up before the body is read.
 */
import type { DataSet, Element } from 'dicom-parser';
import { inflateRawSync } from 'node:zlib';
import { GatedError, toGatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import { KNOWN_UNSUPPORTED, TRANSFER_SYNTAXES, type TransferSyntax } from './transfer_syntax.ts';
import { looksExplicit, walkDataSet, type Encoding } from './walk.ts';

export type { DataSet, Element };

export interface DicomFile {
  meta: DataSet;
  /** The body; its byteArray is the inflated data for deflated files. */
  ds: DataSet;
  ts: TransferSyntax;
  encoding: Encoding;
  warnings: { code: string; message: string }[];
}

const IMPLICIT_LE = '1.2.840.10008.1.2';

/** `fileSize` > bytes.length: `bytes` is the head of a file of that size (header reading only). */
export function readDicomFile(bytes: Uint8Array, limits: Limits, fileSize = bytes.length): DicomFile {
  if (bytes.length < 132 || bytes[128] !== 0x44 || bytes[129] !== 0x49 || bytes[130] !== 0x43 || bytes[131] !== 0x4d) {
    throw new GatedError('not_dicom', 'no DICM marker at byte 128: not a DICOM Part 10 file');
  }
  if (fileSize > limits.maxFileBytes) throw new GatedError('too_large', `the file has ${fileSize} bytes; the limit is ${limits.maxFileBytes}`);
  const warnings: DicomFile['warnings'] = [];
  const { ds: meta, end: metaEnd } = walkDataSet(bytes, 132, { littleEndian: true, explicit: true }, limits, { onlyGroup: 0x0002 });
  const uid = str(meta, 'x00020010')?.replace(/\0/g, '').trim();
  if (!uid) throw new GatedError('meta_missing_ts', 'the file meta header has no TransferSyntaxUID (0002,0010)');
  const ts = TRANSFER_SYNTAXES.get(uid);
  if (!ts) {
    const known = KNOWN_UNSUPPORTED[uid];
    throw new GatedError('unsupported_transfer_syntax', `transfer syntax ${uid}${known ? ` (${known})` : ''} is not supported`, { details: { transferSyntaxUID: uid } });
  }
  if (ts.deflated && fileSize > bytes.length) throw new GatedError('truncated', 'a deflated data set cannot be read from the head of its file');
  const body = ts.deflated ? inflate(bytes.subarray(metaEnd), limits) : bytes;
  const start = ts.deflated ? 0 : metaEnd;
  const encoding: Encoding = { littleEndian: ts.littleEndian, explicit: ts.uid !== IMPLICIT_LE };
  if (ts.littleEndian && start + 6 <= body.length && looksExplicit(body, start) !== encoding.explicit) {
    // read the body as it is encoded, not as the meta header claims (pydicom does the same)
    encoding.explicit = !encoding.explicit;
    warnings.push({ code: 'vr_mismatch', message: `the data set is ${encoding.explicit ? 'explicit' : 'implicit'} VR although the transfer syntax says otherwise` });
  }
  const { ds } = walkDataSet(body, start, encoding, limits, ts.deflated ? {} : { fileSize });
  return { meta, ds, ts, encoding, warnings };
}

/** String value with padding removed, or undefined. */
export function str(ds: DataSet, tag: string): string | undefined {
  const el = ds.elements[tag];
  if (!el || el.length === 0) return undefined;
  try {
    const s = ds.string(tag);
    return s === undefined || s === '' ? undefined : s;
  } catch (e) {
    throw toGatedError(e, 'bad_length', `tag ${tag}`);
  }
}

/** Numbers from a DS/IS string (backslash-separated) or undefined. */
export function nums(ds: DataSet, tag: string): number[] | undefined {
  const s = str(ds, tag);
  if (s === undefined) return undefined;
  const out = s.split('\\').map((x) => (x.trim() === '' ? Number.NaN : Number(x.trim())));
  return out.every((x) => Number.isFinite(x)) ? out : undefined;
}

export function num(ds: DataSet, tag: string): number | undefined {
  return nums(ds, tag)?.[0];
}

/** US value, read by the dataset's own byte order. */
export function us(ds: DataSet, tag: string): number | undefined {
  const el = ds.elements[tag];
  if (!el || el.length < 2) return undefined;
  return ds.uint16(tag);
}

/** First item's data set of a sequence, if any. */
export function item(ds: DataSet | undefined, tag: string, index = 0): DataSet | undefined {
  return ds?.elements[tag]?.items?.[index]?.dataSet;
}

// --- internal ---

function inflate(deflated: Uint8Array, limits: Limits): Uint8Array {
  try {
    return inflateRawSync(deflated, { maxOutputLength: limits.maxInflatedBytes });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new GatedError('decompressed_too_large', `the deflated data set inflates past ${limits.maxInflatedBytes} bytes`, { details: { limit: limits.maxInflatedBytes } });
    }
    throw toGatedError(e, code === 'Z_BUF_ERROR' ? 'truncated' : 'bad_length', 'deflated data set');
  }
}
