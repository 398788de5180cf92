/**
 * dicom-parser behind our own bounds: its throws (strings, objects, TypeErrors) become typed errors,
 * deflate is inflated with an output cap, and after parsing every element of the tree is checked to lie
 * inside the buffer and every sequence to nest at most limits.maxSequenceDepth deep.
 */
import dicomParser from 'dicom-parser';
import type { DataSet, Element } from 'dicom-parser';
import { inflateRawSync } from 'node:zlib';
import { GatedError, toGatedError, type ErrorCode } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';

export type { DataSet, Element };

/**
 * `fileSize` larger than `bytes` means `bytes` is only the head of the file: parsing stops at PixelData
 * (its declared length is checked against the real file size instead of the prefix).
 */
export function parseDataSet(bytes: Uint8Array, limits: Limits, fileSize = bytes.length): DataSet {
  const headOnly = fileSize > bytes.length;
  if (bytes.length < 132 || bytes[128] !== 0x44 || bytes[129] !== 0x49 || bytes[130] !== 0x43 || bytes[131] !== 0x4d) {
    throw new GatedError('not_dicom', 'no DICM marker at byte 128: not a DICOM Part 10 file');
  }
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, {
      ...(headOnly ? { untilTag: 'x7fe00010' } : {}),
      inflater: (arr: Uint8Array, position: number) => {
        let inflated: Buffer;
        try {
          inflated = inflateRawSync(arr.subarray(position), { maxOutputLength: limits.maxInflatedBytes });
        } catch (e) {
          if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
            throw new GatedError('decompressed_too_large', `deflated data inflates past ${limits.maxInflatedBytes} bytes`);
          }
          throw new GatedError('truncated', 'the deflated data set is damaged', { cause: e });
        }
        const full = new Uint8Array(position + inflated.length);
        full.set(arr.subarray(0, position));
        full.set(inflated, position);
        return full;
      },
    } as never);
  } catch (e) {
    throw classify(e);
  }
  const pixel = ds.elements.x7fe00010;
  if (headOnly) {
    // the head must hold the whole data set up to PixelData; its value is checked against the real size
    if (!pixel) throw new GatedError('truncated', 'PixelData does not start within the file head');
    if (!pixel.hadUndefinedLength && pixel.dataOffset + pixel.length > fileSize) {
      throw new GatedError('truncated', `PixelData (${pixel.length} bytes at ${pixel.dataOffset}) runs past the end of the file (${fileSize} bytes)`);
    }
  }
  checkTree(ds, headOnly ? Number.MAX_SAFE_INTEGER : ds.byteArray.length, limits.maxSequenceDepth, 0);
  return ds;
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
  const out = s.split('\\').map((x) => Number(x.trim()));
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

function classify(e: unknown): GatedError {
  if (e instanceof GatedError) return e;
  const msg = typeof e === 'string' ? e : e instanceof Error ? e.message : String((e as { exception?: unknown })?.exception ?? '');
  let code: ErrorCode = 'bad_length';
  if (/missing required meta header attribute 0002,0010/.test(msg)) code = 'meta_missing_ts';
  else if (/call stack/i.test(msg)) code = 'nesting';
  else if (/overrun|past end|end of buffer|cannot be greater than|outside the bounds|beyond|maxPosition/i.test(msg)) code = 'truncated';
  else if (/DICM|prefix/i.test(msg)) code = 'not_dicom';
  else if (/transfer syntax/i.test(msg)) code = 'unsupported_transfer_syntax';
  return toGatedError(e, code, 'DICOM parse');
}

function checkTree(ds: DataSet, size: number, maxDepth: number, depth: number): void {
  if (depth > maxDepth) throw new GatedError('nesting', `sequences nest deeper than ${maxDepth} levels`);
  for (const key in ds.elements) {
    const el = ds.elements[key]!;
    if (el.dataOffset < 0 || el.length < 0 || el.dataOffset + (el.hadUndefinedLength ? 0 : el.length) > size) {
      throw new GatedError('truncated', `element ${el.tag} (length ${el.length} at ${el.dataOffset}) runs past the end of the data (${size} bytes)`);
    }
    if (el.items) {
      for (const it of el.items) {
        if (it.dataSet) checkTree(it.dataSet, size, maxDepth, depth + 1);
      }
    }
    if (el.fragments) {
      for (const f of el.fragments) {
        if (f.position < 0 || f.position + f.length > size) throw new GatedError('truncated', `pixel data fragment at ${f.position} runs past the end of the data`);
      }
    }
  }
}
