/**
 * Synthetic parsed DICOM objects for series-assembly tests: geometry chosen by the test, pixel values that
 * encode where they came from (slice tag, row, column), so order and layout are checked value by value.
 */
import { resolveLimits } from '../../../core/limits.ts';
import type { Vec3 } from '../../../io/geometry.ts';
import type { DicomHeader } from '../../../io/dicom/parse.ts';
import type { ObjectSource } from '../../../io/dicom/stack.ts';
import type { FrameGeometry } from '../../../io/dicom/types.ts';
import type { VoxelArray } from '../../../io/volume.ts';

export const limits = resolveLimits();
export const AXIAL: FrameGeometry['orientation'] = [1, 0, 0, 0, 1, 0];

export interface SliceSpec {
  position?: Vec3;
  orientation?: FrameGeometry['orientation'];
  pixelSpacing?: [number, number];
  thickness?: number;
  rescale?: { slope: number; intercept: number };
  rows?: number;
  cols?: number;
  /** Stored value of (row r, column c): default tag*1000 + r*cols + c. */
  value?: (r: number, c: number) => number;
  tag?: number;
  series?: string;
  instance?: number;
  acquisition?: number;
  echo?: number;
  sop?: string;
  gantryTilt?: number;
  photometric?: string;
  dtype?: 'int16' | 'uint16';
  window?: { center: number; width: number };
}

let counter = 0;

export function slice(spec: SliceSpec): ObjectSource {
  const rows = spec.rows ?? 4;
  const cols = spec.cols ?? 3;
  const tag = spec.tag ?? 0;
  const value = spec.value ?? ((r: number, c: number) => tag * 1000 + r * cols + c);
  const pixels: VoxelArray = spec.dtype === 'uint16' ? new Uint16Array(rows * cols) : new Int16Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) pixels[r * cols + c] = value(r, c);
  const geom: FrameGeometry = { rescale: spec.rescale ?? { slope: 1, intercept: 0 } };
  if (spec.position) geom.position = spec.position;
  if (spec.orientation !== undefined || spec.position) geom.orientation = spec.orientation ?? AXIAL;
  geom.pixelSpacing = spec.pixelSpacing ?? [1, 1];
  if (spec.thickness !== undefined) geom.sliceThickness = spec.thickness;
  if (spec.window) geom.window = spec.window;
  const n = counter++;
  const header: DicomHeader = {
    sourceIndex: n,
    sourceName: `file-${n}`,
    transferSyntaxUID: '1.2.840.10008.1.2.1',
    sopClassUID: '1.2.840.10008.5.1.4.1.1.4',
    sopInstanceUID: spec.sop ?? `1.2.3.4.${n}`,
    studyInstanceUID: '1.2.3',
    seriesInstanceUID: spec.series ?? '1.2.3.1',
    frameOfReferenceUID: '1.2.3.9',
    seriesNumber: 1,
    modality: 'MR',
    ...(spec.instance !== undefined ? { instanceNumber: spec.instance } : {}),
    ...(spec.acquisition !== undefined ? { acquisitionNumber: spec.acquisition } : {}),
    ...(spec.echo !== undefined ? { echoNumber: spec.echo } : {}),
    ...(spec.gantryTilt !== undefined ? { gantryTilt: spec.gantryTilt } : {}),
    rows,
    columns: cols,
    numberOfFrames: 1,
    samplesPerPixel: 1,
    photometric: spec.photometric ?? 'MONOCHROME2',
    bitsAllocated: 16,
    bitsStored: 16,
    highBit: 15,
    pixelRepresentation: spec.dtype === 'uint16' ? 0 : 1,
    planarConfiguration: 0,
    frames: [geom],
    warnings: [],
  };
  return { header, pixels: async () => pixels };
}

/** A multi-frame object: one header, frames with their own geometry, pixels frame after frame. */
export function multiFrame(frames: FrameGeometry[], rows: number, cols: number, value: (f: number, r: number, c: number) => number, samples = 1): ObjectSource {
  const n = counter++;
  const pixels = samples === 3 ? new Uint8Array(frames.length * rows * cols * 3) : new Int16Array(frames.length * rows * cols);
  for (let f = 0; f < frames.length; f++) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) for (let s = 0; s < samples; s++) pixels[((f * rows + r) * cols + c) * samples + s] = value(f, r, c) + s;
  const header: DicomHeader = {
    sourceIndex: n,
    sourceName: `file-${n}`,
    transferSyntaxUID: '1.2.840.10008.1.2.1',
    sopInstanceUID: `1.2.3.4.${n}`,
    seriesInstanceUID: `1.2.3.mf.${n}`,
    rows,
    columns: cols,
    numberOfFrames: frames.length,
    samplesPerPixel: samples,
    photometric: samples === 3 ? 'RGB' : 'MONOCHROME2',
    bitsAllocated: samples === 3 ? 8 : 16,
    bitsStored: samples === 3 ? 8 : 16,
    highBit: samples === 3 ? 7 : 15,
    pixelRepresentation: samples === 3 ? 0 : 1,
    planarConfiguration: 0,
    frames,
    warnings: [],
  };
  return { header, pixels: async () => pixels };
}

/** Positions p0 + k·step·n for k in ks, along unit normal n. */
export function along(p0: Vec3, n: Vec3, step: number, ks: number[]): Vec3[] {
  return ks.map((k) => [p0[0] + n[0] * step * k, p0[1] + n[1] * step * k, p0[2] + n[2] * step * k]);
}

export function shuffle<T>(xs: T[], seed = 7): T[] {
  const a = [...xs];
  let s = seed;
  for (let i = a.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
