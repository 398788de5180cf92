/**
 * PIL/numpy as the oracle for 2D images: decode files the way `numpy.asarray(PIL.Image.open(...))` does, and
 * turn our planar x-fastest volumes into the same row-major [row][column][channel] bytes for comparison.
 */
import { expect } from 'vitest';
import type { Volume } from '../../../io/volume.ts';
import { runPython } from '../../_helpers/python.ts';

export interface PilImage {
  /** numpy shape: [rows, cols] or [rows, cols, channels]. */
  shape: number[];
  dtype: 'uint8' | 'uint16';
  data: Uint8Array | Uint16Array;
  dpi: number[] | null;
}

export interface PilOptions {
  /** Apply ImageOps.exif_transpose first. */
  exif?: boolean;
  /** PIL mode to convert to (palette, bilevel and alpha images). */
  convert?: string;
  frame?: number;
}

const DECODE = String.raw`
import sys, json, base64
import numpy as np
from PIL import Image, ImageOps
out = []
for job in json.loads(sys.stdin.read()):
    im = Image.open(job['path'])
    if job.get('frame'): im.seek(job['frame'])
    if job.get('exif'): im = ImageOps.exif_transpose(im)
    if job.get('convert'): im = im.convert(job['convert'])
    a = np.asarray(im)
    # PIL widens 16-bit gray to int32 mode 'I'; the file holds uint16.
    a = a.astype(np.uint16) if a.dtype.itemsize > 1 else a.astype(np.uint8)
    dpi = im.info.get('dpi')
    out.append({'shape': list(a.shape), 'dtype': str(a.dtype), 'dpi': list(map(float, dpi)) if dpi else None,
                'b64': base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<')).tobytes()).decode()})
print(json.dumps(out))
`;

/** One Python run for many files (PIL + numpy import once). */
export function pilDecode(jobs: ({ path: string } & PilOptions)[]): PilImage[] {
  const parsed = JSON.parse(runPython(DECODE, [], { input: JSON.stringify(jobs) })) as { shape: number[]; dtype: 'uint8' | 'uint16'; dpi: number[] | null; b64: string }[];
  return parsed.map((p) => {
    const bytes = new Uint8Array(Buffer.from(p.b64, 'base64'));
    const data = p.dtype === 'uint16' ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : bytes;
    return { shape: p.shape, dtype: p.dtype, data, dpi: p.dpi };
  });
}

/** Our volume as numpy would lay it out: row-major, channels last. */
export function toRowMajor(v: Volume): { shape: number[]; data: number[] } {
  const [w = 0, h = 0, , c = 1] = v.shape;
  const n = w * h;
  const out = new Array<number>(n * c);
  for (let row = 0; row < h; row++) {
    for (let col = 0; col < w; col++) {
      for (let k = 0; k < c; k++) out[(row * w + col) * c + k] = v.data[k * n + row * w + col] as number;
    }
  }
  return { shape: c === 1 ? [h, w] : [h, w, c], data: out };
}

/** Exact equality, reporting the first differing sample instead of dumping arrays. */
export function expectSamePixels(v: Volume, pil: PilImage): void {
  const ours = toRowMajor(v);
  expect(ours.shape).toEqual(pil.shape);
  let firstBad = -1;
  let bad = 0;
  for (let i = 0; i < ours.data.length; i++) {
    if (ours.data[i] !== pil.data[i]) {
      if (firstBad < 0) firstBad = i;
      bad++;
    }
  }
  expect({ bad, firstBad, ours: ours.data[firstBad], pil: pil.data[firstBad] }).toEqual({ bad: 0, firstBad: -1, ours: undefined, pil: undefined });
}
