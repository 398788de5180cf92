/**
 * Tiny image fixtures made by PIL/numpy (and, for 16-bit RGB PNG, which PIL cannot write, by a stdlib
 * encoder with no filtering) into a fresh temp folder. Expected pixels come from the numpy arrays.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeflate } from 'node:zlib';
import { runPython } from '../../_helpers/python.ts';

const MAKE = String.raw`
import sys, struct, zlib
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(7)

def png16(path, arr):
    h, w, c = arr.shape
    raw = b''.join(b'\0' + arr[y].astype('>u2').tobytes() for y in range(h))
    def chunk(t, data): return struct.pack('>I', len(data)) + t + data + struct.pack('>I', zlib.crc32(t + data) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', w, h, 16, {1: 0, 3: 2}[c], 0, 0, 0)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))

rgb16 = rng.integers(0, 65536, (6, 4, 3)).astype(np.uint16)
png16(d + '/rgb16.png', rgb16)
open(d + '/rgb16.bin', 'wb').write(rgb16.astype('<u2').tobytes())
Image.fromarray(rng.integers(0, 65536, (7, 5)).astype(np.uint16)).save(d + '/gray16.png')

rgb = rng.integers(0, 256, (9, 13, 3)).astype(np.uint8)
for o in range(1, 9):
    ex = Image.Exif(); ex[0x0112] = o
    Image.fromarray(rgb).save(d + '/exif%d.jpg' % o, exif=ex, quality=95)
Image.fromarray(rgb).save(d + '/dpi300.jpg', dpi=(300, 300), quality=95)
Image.fromarray(rng.integers(0, 256, (5, 6, 2)).astype(np.uint8), 'LA').save(d + '/la.png')
frames = [Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)) for _ in range(3)]
frames[0].save(d + '/anim.webp', save_all=True, append_images=frames[1:], lossless=True)
frames[0].save(d + '/multi.tif', save_all=True, append_images=frames[1:])
# white, black, cyan, magenta, yellow in CMYK
cmyk = np.array([[[0, 0, 0, 0], [0, 0, 0, 255], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0]]], dtype=np.uint8)
Image.fromarray(cmyk, 'CMYK').save(d + '/cmyk.tif')
Image.fromarray(cmyk, 'CMYK').save(d + '/cmyk.jpg', quality=100)
Image.fromarray(rgb).save(d + '/rgb.tif')
Image.fromarray(rgb[:, :, 0]).save(d + '/aniso.png', dpi=(25.4, 50.8))
`;

let dir: string | undefined;

/** Folder holding the fixtures (made once per test file). */
export function imageFixtures(): string {
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'gv-img-'));
    runPython(MAKE, [dir]);
  }
  return dir;
}

/** Deletes the folder (call from afterAll). */
export function removeImageFixtures(): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}

export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(imageFixtures(), name)));
}

/**
 * A complete, valid 8-bit gray PNG of width×height zero pixels, compressed to a few hundred KB: the decoder
 * would need width·height bytes. Streamed row by row into one deflate stream, so making it stays small too.
 */
export async function pngBomb(width: number, height: number): Promise<Uint8Array> {
  const row = Buffer.alloc(width + 1); // filter byte 0 + zero samples
  const deflate = createDeflate({ level: 9 });
  const parts: Buffer[] = [];
  deflate.on('data', (c: Buffer) => parts.push(c));
  const ended = new Promise((resolve, reject) => deflate.on('end', resolve).on('error', reject));
  for (let y = 0; y < height; y++) if (!deflate.write(row)) await new Promise((r) => deflate.once('drain', r));
  deflate.end();
  await ended;
  const idat = Buffer.concat(parts);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (gray), default compression/filter/interlace
  return new Uint8Array(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]));
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
