/**
 * Minimal read-only zip reader for checkpoint containers (PyTorch zip checkpoints, NumPy .npz): central
 * directory (zip64 included), stored and deflated entries. Entry names are only used as lookup keys.
 */
import { inflateRawSync } from 'node:zlib';
import { GatedError } from '../../core/errors.ts';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  readonly #buf: Uint8Array;
  readonly #view: DataView;

  constructor(buf: Uint8Array, what = 'archive') {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const eocd = this.#findEocd();
    if (eocd < 0) throw new GatedError('unsupported_format', `${what} is not a zip archive (no end-of-central-directory record)`);
    let count = this.#view.getUint16(eocd + 10, true);
    let cdSize = this.#view.getUint32(eocd + 12, true);
    let cdOffset = this.#view.getUint32(eocd + 16, true);
    if (count === 0xffff || cdOffset === 0xffffffff || cdSize === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || this.#view.getUint32(loc, true) !== 0x07064b50) throw new GatedError('unsupported_format', `${what}: zip64 locator missing`);
      const z64 = this.#u64(loc + 8);
      if (this.#view.getUint32(z64, true) !== 0x06064b50) throw new GatedError('unsupported_format', `${what}: zip64 record missing`);
      count = this.#u64(z64 + 32);
      cdSize = this.#u64(z64 + 40);
      cdOffset = this.#u64(z64 + 48);
    }
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > buf.length || this.#view.getUint32(p, true) !== 0x02014b50) throw new GatedError('unsupported_format', `${what}: damaged central directory`);
      const method = this.#view.getUint16(p + 10, true);
      let compressedSize = this.#view.getUint32(p + 20, true);
      let size = this.#view.getUint32(p + 24, true);
      const nameLen = this.#view.getUint16(p + 28, true);
      const extraLen = this.#view.getUint16(p + 30, true);
      const commentLen = this.#view.getUint16(p + 32, true);
      let localOffset = this.#view.getUint32(p + 42, true);
      const name = new TextDecoder().decode(buf.subarray(p + 46, p + 46 + nameLen));
      // zip64 extra field: the 0xffffffff fields follow in order size, compressed size, offset
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = this.#view.getUint16(e, true);
        const len = this.#view.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) (size = this.#u64(q)), (q += 8);
          if (compressedSize === 0xffffffff) (compressedSize = this.#u64(q)), (q += 8);
          if (localOffset === 0xffffffff) localOffset = this.#u64(q);
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, localOffset });
      p = eEnd + commentLen;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw new GatedError('unsupported_format', `archive has no entry '${name}'`);
    const p = e.localOffset;
    if (this.#view.getUint32(p, true) !== 0x04034b50) throw new GatedError('unsupported_format', `damaged local header for '${name}'`);
    const start = p + 30 + this.#view.getUint16(p + 26, true) + this.#view.getUint16(p + 28, true);
    const raw = this.#buf.subarray(start, start + e.compressedSize);
    if (raw.length !== e.compressedSize) throw new GatedError('truncated', `entry '${name}' runs past the end of the archive`);
    if (e.method === 0) return raw;
    if (e.method === 8) {
      const out = inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
    throw new GatedError('unsupported_format', `entry '${name}' uses zip method ${e.method}; only stored and deflate are supported`);
  }

  #findEocd(): number {
    const min = Math.max(0, this.#buf.length - 22 - 65535);
    for (let i = this.#buf.length - 22; i >= min; i--) if (this.#view.getUint32(i, true) === 0x06054b50) return i;
    return -1;
  }

  #u64(p: number): number {
    return this.#view.getUint32(p, true) + this.#view.getUint32(p + 4, true) * 2 ** 32;
  }
}
