/**
 * Zip archives of DICOM series, read in memory with yauzl and our own caps counted on inflated bytes
 * (entry count, bytes per entry, total), never on the sizes the archive declares. An entry whose name
 * could escape a folder (or a symlink) refuses the whole archive; nothing is ever written to disk and
 * entry names are only used as display labels.
 */
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { GatedError, toGatedError } from '../core/errors.ts';
import type { Limits } from '../core/limits.ts';
import type { InputItem, Rejection } from './types.ts';

export async function openZip(bytes: Uint8Array, limits: Limits): Promise<{ items: InputItem[]; skipped: Rejection[] }> {
  const zip = await new Promise<ZipFile>((resolve, reject) =>
    yauzl.fromBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { lazyEntries: true, validateEntrySizes: true, strictFileNames: false, decodeStrings: true }, (err, z) =>
      err ? reject(new GatedError('bad_archive', `not a readable zip archive: ${err.message}`)) : resolve(z!),
    ),
  );
  const items: InputItem[] = [];
  const skipped: Rejection[] = [];
  let total = 0;
  let count = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (e: unknown) => {
        zip.close();
        reject(e);
      };
      zip.on('error', (e: Error) =>
        fail(/relative path|absolute path/i.test(e.message) ? new GatedError('zip_path', `an entry name escapes the archive: ${e.message}`) : new GatedError('bad_archive', `damaged zip archive: ${e.message}`)),
      );
      zip.on('end', () => resolve());
      zip.on('entry', (entry: Entry) => {
        try {
          if (++count > limits.maxZipEntries) throw new GatedError('too_large', `the archive has more than ${limits.maxZipEntries} entries`);
          checkName(entry);
          const name = entry.fileName;
          const base = name.split('/').pop() ?? '';
          if (name.endsWith('/')) return zip.readEntry();
          if (/^__MACOSX\//.test(name) || base === '.DS_Store' || base.toUpperCase() === 'DICOMDIR') {
            skipped.push({ name, code: 'unsupported_format', message: 'skipped: archive metadata / DICOMDIR (never followed)' });
            return zip.readEntry();
          }
          if ((entry.generalPurposeBitFlag & 1) !== 0) throw new GatedError('bad_archive', `entry '${name}' is encrypted`);
          if (entry.uncompressedSize > limits.maxZipEntryBytes) throw new GatedError('decompressed_too_large', `entry '${name}' declares ${entry.uncompressedSize} bytes; the per-entry limit is ${limits.maxZipEntryBytes}`);
          zip.openReadStream(entry, (err, stream) => {
            if (err || !stream) return fail(new GatedError('bad_archive', `cannot read entry '${name}': ${err?.message ?? 'no stream'}`));
            const chunks: Buffer[] = [];
            let n = 0;
            stream.on('data', (c: Buffer) => {
              n += c.length;
              total += c.length;
              if (n > limits.maxZipEntryBytes || total > limits.maxZipTotalBytes) {
                stream.destroy();
                fail(new GatedError('decompressed_too_large', `the archive inflates past its limit (${n > limits.maxZipEntryBytes ? 'per entry' : 'in total'})`));
                return;
              }
              chunks.push(c);
            });
            stream.on('error', (e: Error) => fail(new GatedError('bad_archive', `entry '${name}' is damaged: ${e.message}`)));
            stream.on('end', () => {
              const data = new Uint8Array(Buffer.concat(chunks, n));
              if (isZip(data)) skipped.push({ name, code: 'unsupported_format', message: 'skipped: nested archives are not opened' });
              else items.push({ name, size: n, read: async () => data });
              zip.readEntry();
            });
          });
        } catch (e) {
          fail(e);
        }
      });
      zip.readEntry();
    });
  } catch (e) {
    throw toGatedError(e, 'bad_archive');
  }
  return { items, skipped };
}

// --- internal ---

function checkName(entry: Entry): void {
  const name = entry.fileName;
  const parts = name.split(/[\\/]/);
  if (name.startsWith('/') || name.startsWith('\\') || /^[a-zA-Z]:/.test(name) || parts.includes('..') || name.includes('\0')) {
    throw new GatedError('zip_path', `entry name '${name.replace(/[^\x20-\x7e]/g, '?').slice(0, 120)}' escapes the archive`);
  }
  const unixMode = (entry.externalFileAttributes >>> 16) & 0o170000;
  if (unixMode === 0o120000) throw new GatedError('zip_path', `entry '${name.slice(0, 120)}' is a symbolic link`);
}

function isZip(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 3 && b[3] === 4;
}
