/**
 * Zip archives read in memory with yauzl. The central directory is checked whole before any entry is
 * offered: an entry name that could escape a folder, or a symlink, refuses the archive (`zip_path`);
 * encryption, overlapping entries and impossible counts are `bad_archive`. Entries inflate lazily, capped on
 * the bytes actually inflated (per entry and in total), never allocated from declared sizes. Nothing is
 * written to disk; entry names are display labels only. Nested archives are never opened.
 */
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { GatedError } from '../core/errors.ts';
import type { Limits } from '../core/limits.ts';
import type { InputItem, Rejection } from './types.ts';

/** Smallest central-directory record (fixed part): a count above bytes/46 cannot be genuine. */
const CENTRAL_RECORD_BYTES = 46;
const LOCAL_HEADER_BYTES = 30;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** Opens a zip held in memory; throws a GatedError for the whole archive, or lists what it skipped. */
export async function openZip(bytes: Uint8Array, limits: Limits): Promise<{ items: InputItem[]; skipped: Rejection[] }> {
  if (bytes.length > limits.maxFileBytes) throw new GatedError('too_large', `the archive is ${bytes.length} bytes; the limit is ${limits.maxFileBytes}`);
  const zip = await openBuffer(bytes);
  if (zip.entryCount * CENTRAL_RECORD_BYTES > bytes.length) {
    throw new GatedError('bad_archive', `the archive claims ${zip.entryCount} entries, more than ${bytes.length} bytes can hold`);
  }
  if (zip.entryCount > limits.maxZipEntries) {
    throw new GatedError('too_large', `the archive has ${zip.entryCount} entries; the limit is ${limits.maxZipEntries}`, { details: { entries: zip.entryCount } });
  }
  const entries = await readCentralDirectory(zip);
  checkOverlap(entries);

  const items: InputItem[] = [];
  const skipped: Rejection[] = [];
  let declaredTotal = 0;
  // One budget per archive, shared by its items; each entry is charged once however often it is read.
  let charged = 0;
  const budget = (n: number): boolean => (charged += n) <= limits.maxZipTotalBytes;
  for (const entry of entries) {
    const name = entryName(entry);
    const reason = skipReason(entry, name);
    if (reason) {
      skipped.push({ name, code: 'unsupported_format', message: `skipped: ${reason}` });
      continue;
    }
    if ((entry.generalPurposeBitFlag & 1) !== 0) throw new GatedError('bad_archive', `entry '${name}' is encrypted`);
    // A valid archive's declared sizes equal the inflated ones (yauzl checks while streaming), so an honest
    // bomb fails here without inflating a byte; a lying one fails on the counted bytes in inflate().
    if (entry.uncompressedSize > limits.maxZipEntryBytes) {
      throw new GatedError('decompressed_too_large', `entry '${name}' inflates to ${entry.uncompressedSize} bytes; the per-entry limit is ${limits.maxZipEntryBytes}`, { details: { declared: entry.uncompressedSize } });
    }
    declaredTotal += entry.uncompressedSize;
    if (declaredTotal > limits.maxZipTotalBytes) {
      throw new GatedError('decompressed_too_large', `the archive inflates to more than ${limits.maxZipTotalBytes} bytes in total`, { details: { declared: declaredTotal } });
    }
    items.push(lazyItem(zip, entry, name, limits, budget));
  }
  return { items, skipped };
}

// --- internal ---

function openBuffer(bytes: Uint8Array): Promise<ZipFile> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // decodeStrings off: names are decoded and judged here (raw and Unicode-extra forms alike), not by yauzl.
  const options = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true, strictFileNames: true };
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, options, (err, zip) => {
      if (err || !zip) reject(new GatedError('bad_archive', `not a readable zip archive: ${err?.message ?? 'no archive'}`, { cause: err }));
      else resolve(zip);
    });
  });
}

/** Walks the whole central directory first, so a hostile entry anywhere refuses the archive before use. */
function readCentralDirectory(zip: ZipFile): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: Entry[] = [];
    const fail = (e: unknown) => {
      zip.removeAllListeners();
      zip.close();
      reject(e instanceof GatedError ? e : new GatedError('bad_archive', `damaged zip archive: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
    };
    zip.on('error', fail);
    zip.on('end', () => {
      zip.removeAllListeners();
      // Reading from memory cannot fail later, but an 'error' without a listener would kill the process.
      zip.on('error', () => undefined);
      resolve(entries);
    });
    zip.on('entry', (entry: Entry) => {
      try {
        checkEntryPath(entry);
        entries.push(entry);
        zip.readEntry();
      } catch (e) {
        fail(e);
      }
    });
    zip.readEntry();
  });
}

function decodeName(entry: Entry, useExtra: boolean): string {
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, useExtra ? entry.extraFields : [], true);
}

/** Display name: '/' separators, '.' segments dropped, control characters shown as '?'. */
function entryName(entry: Entry): string {
  const parts = decodeName(entry, true).replace(/\\/g, '/').split('/');
  const kept = parts.filter((p, i) => p !== '.' && (p !== '' || i === parts.length - 1));
  // eslint-disable-next-line no-control-regex
  return kept.join('/').replace(/[\u0000-\u001f\u007f]/g, '?');
}

/**
 * Names are judged in both forms a tool might use (the raw bytes and the Info-ZIP Unicode path), with '\'
 * read as a separator as Windows extractors do.
 */
function checkEntryPath(entry: Entry): void {
  for (const raw of new Set([decodeName(entry, false), decodeName(entry, true)])) {
    const name = raw.replace(/\\/g, '/');
    const shown = raw.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
    if (name.startsWith('/')) throw new GatedError('zip_path', `entry '${shown}' is an absolute path`);
    if (/^[a-zA-Z]:/.test(name)) throw new GatedError('zip_path', `entry '${shown}' names a drive`);
    if (name.split('/').includes('..')) throw new GatedError('zip_path', `entry '${shown}' climbs out of the archive ('..')`);
    if (name.includes('\0')) throw new GatedError('zip_path', `entry '${shown}' holds a NUL byte`);
  }
  // Unix mode sits in the high 16 bits whatever the host byte says; a symlink there is refused outright.
  if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) {
    throw new GatedError('zip_path', `entry '${entryName(entry).slice(0, 120)}' is a symbolic link`);
  }
}

/** Entries whose data ranges overlap (or share a local header) are the Fifield-style bomb; none is genuine. */
function checkOverlap(entries: Entry[]): void {
  const ranges = entries
    .map((e) => ({ start: e.relativeOffsetOfLocalHeader, end: e.relativeOffsetOfLocalHeader + LOCAL_HEADER_BYTES + e.compressedSize }))
    .sort((a, b) => a.start - b.start);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]!.start < ranges[i - 1]!.end) {
      throw new GatedError('bad_archive', 'two entries of the archive share or overlap their data (overlapping-entry zip bomb)');
    }
  }
}

function skipReason(entry: Entry, name: string): string | undefined {
  const segments = name.split('/');
  const base = segments.at(-1) ?? '';
  if (name.endsWith('/') || name === '') return 'directory';
  if (segments.includes('__MACOSX')) return 'macOS resource fork (__MACOSX)';
  if (segments.some((s) => s.startsWith('.'))) return 'hidden file';
  if (base.toUpperCase() === 'DICOMDIR') return 'DICOMDIR index (paths in it are never followed)';
  if (/\.(zip|jar|7z|rar|tar|tgz|tar\.gz)$/i.test(base)) return 'nested archive (never opened)';
  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) return `compression method ${entry.compressionMethod} is not supported (stored or deflate only)`;
  return undefined;
}

function lazyItem(zip: ZipFile, entry: Entry, name: string, limits: Limits, budget: (n: number) => boolean): InputItem {
  let charging = true;
  return {
    name,
    size: entry.uncompressedSize,
    read: async () => {
      const first = charging;
      charging = false;
      return inflate(zip, entry, name, limits, first ? budget : () => true);
    },
  };
}

function inflate(zip: ZipFile, entry: Entry, name: string, limits: Limits, budget: (n: number) => boolean): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err || !stream) {
        reject(new GatedError('bad_archive', `cannot read entry '${name}': ${err?.message ?? 'no stream'}`, { cause: err }));
        return;
      }
      const chunks: Buffer[] = [];
      let n = 0;
      let done = false;
      const stop = (e: GatedError) => {
        if (done) return;
        done = true;
        stream.destroy();
        reject(e);
      };
      stream.on('data', (chunk: Buffer) => {
        if (done) return;
        n += chunk.length;
        if (n > limits.maxZipEntryBytes) {
          stop(new GatedError('decompressed_too_large', `entry '${name}' inflates past the per-entry limit of ${limits.maxZipEntryBytes} bytes`));
        } else if (!budget(chunk.length)) {
          stop(new GatedError('decompressed_too_large', `the archive inflates past its total limit of ${limits.maxZipTotalBytes} bytes`));
        } else chunks.push(chunk);
      });
      stream.on('error', (e: Error) => stop(new GatedError('bad_archive', `entry '${name}' is damaged: ${e.message}`, { cause: e })));
      stream.on('end', () => {
        if (done) return;
        done = true;
        const out = new Uint8Array(n);
        let at = 0;
        for (const c of chunks) {
          out.set(c, at);
          at += c.length;
        }
        resolve(out);
      });
    });
  });
}
