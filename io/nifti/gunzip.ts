/**
 * Size-capped gunzip. The gzip ISIZE trailer is attacker-controlled and never used: the header is
 * inflated from a prefix first (fflate's streaming inflater, fed small slices, so it is never asked for
 * more than a few hundred KiB), then the whole stream by Node's zlib with an output cap derived from the
 * header (and never above limits.maxInflatedBytes), so a bomb stops at the cap instead of at the OOM
 * killer. Concatenated gzip members are inflated as one stream by both.
 */
import { Gunzip } from 'fflate';
import { gunzipSync } from 'node:zlib';
import { concatBytes } from '../bytes.ts';
import { GatedError, toGatedError } from '../../core/errors.ts';

/**
 * Inflates at least `want` bytes from the start of the stream (fewer only if it ends earlier), feeding
 * small compressed chunks to a streaming inflater so the output per step stays bounded (~1000:1).
 */
export function gunzipPrefix(bytes: Uint8Array, want: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let got = 0;
  const inflater = new Gunzip((chunk) => {
    parts.push(chunk);
    got += chunk.length;
  });
  try {
    for (let at = 0; at < bytes.length && got < want; at += 512) {
      inflater.push(bytes.subarray(at, Math.min(bytes.length, at + 512)), false);
    }
  } catch (e) {
    // Only complete input is pushed as final, so fflate fails here on damaged data, never on a short file.
    throw toGatedError(e, 'decode_failed', 'the gzip stream is damaged');
  }
  return concatBytes(parts);
}

const MAX_CHUNK = 1 << 30;

/** Inflates the whole stream, failing with decompressed_too_large past `cap` bytes. */
export function gunzipCapped(bytes: Uint8Array, cap: number): Uint8Array {
  try {
    // One output chunk as large as the cap (address space only until written, at most 1 GiB): zlib then
    // returns that chunk itself instead of concatenating 64 KiB pieces into a second copy of the volume.
    const chunkSize = Math.max(64 * 1024, Math.min(cap + 1, MAX_CHUNK));
    const out = gunzipSync(bytes, { maxOutputLength: Math.max(cap, 1), chunkSize });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new GatedError('decompressed_too_large', `gzip data inflates past ${cap} bytes (the most this header allows)`);
    }
    if (code === 'Z_BUF_ERROR') throw new GatedError('truncated', 'the gzip stream ends early');
    // Z_DATA_ERROR: bad deflate data, CRC or length check (a forged ISIZE lands here), trailing junk.
    throw toGatedError(e, 'decode_failed', 'the gzip stream is damaged');
  }
}
