/** Shapes shared by the readers and the loader. */
import type { Limits } from '../core/limits.ts';
import type { IoWarning, Volume, VoxelArray } from './volume.ts';

/** One input file, read lazily so a folder walk never holds every file at once. */
export interface InputItem {
  /** Display name: a relative path or a zip entry name. Never used to build output paths. */
  name: string;
  /** The file it is read from, for an item of a folder (absent for a zip entry). */
  path?: string;
  size: number;
  read(): Promise<Uint8Array>;
  /**
   * The first `n` bytes (or all, if shorter), when reading a head is cheaper than reading the item. Items
   * of a folder share one head buffer: a head is valid only until the next readHead of any of them.
   */
  readHead?(n: number): Promise<Uint8Array>;
  /**
   * The whole item in a buffer shared by the items of one input: valid only until the next readShared
   * of any of them. Decoding a series one file at a time this way leaves no file buffers to collect.
   */
  readShared?(): Promise<Uint8Array>;
  /**
   * Fills `dst` with the item's bytes from `position` on, straight from the file (no buffer in between),
   * when the item still has `size` bytes; false when it has changed size or ends before `dst` is full.
   */
  readRange?(dst: Uint8Array, position: number, size: number): Promise<boolean>;
}

export interface Progress {
  (done: number, total: number, what: string): void;
}

/**
 * Told as each grey slice k (n2 values, at k * n2 in `data`) of a volume being assembled holds its final
 * stored values, and told (invalidated) when values already reported change afterwards; a writer can then
 * write slices out while later ones are decoded. `data` is the volume's buffer, alive after the call.
 */
export interface SliceSink {
  placed(data: VoxelArray, k: number, n2: number): void;
  invalidated(data: VoxelArray): void;
  /**
   * Present when the sink keeps every slice itself (a file being written). A volume whose slices need no
   * pass over the whole data (one sample per pixel, no duplicate slices to compare, a modality LUT whose
   * outcome the headers decide) is then decoded slice by slice into the sink's own buffers and never held:
   * it comes back with a `data` array of length 0.
   */
  stream?: SliceStreamSink;
}

export interface SliceStreamSink {
  /**
   * Starts an attempt at a volume of `dims` ([columns, rows, slices(, times)]) in slices of `sliceBytes`;
   * an earlier attempt's writes end first. False: this volume is not taken slice by slice, place it whole.
   */
  begin(sliceBytes: number, dims: readonly number[]): Promise<boolean>;
  /** A buffer of sliceBytes for one slice, lent until it is handed to kept() or drop(). */
  slot(): Promise<Uint8Array>;
  /** The slot holds slice k's final stored values. */
  kept(slot: Uint8Array, k: number): void;
  /** The slot is not used (its slice failed). */
  drop(slot: Uint8Array): void;
}

export interface ReadContext {
  limits: Limits;
  onProgress?: Progress;
  /** DICOM: slices as they are decoded (see SliceSink). */
  slices?: SliceSink;
  /** DICOM: resample irregular slice stacks (missing slices, uneven spacing, tilt) onto a regular grid. */
  resample?: boolean;
}

/** A file that could not be used, with the reason; the batch goes on without it. */
export interface Rejection {
  name: string;
  code: string;
  message: string;
}

export interface SeriesSummary {
  seriesInstanceUID?: string;
  seriesNumber?: number;
  description?: string;
  modality?: string;
  files: number;
  shape: number[];
  warnings: IoWarning[];
}

export interface LoadResult {
  format: 'dicom' | 'nifti' | 'image';
  volumes: Volume[];
  /** One entry per volume (DICOM: per series); same order as `volumes`. */
  series: SeriesSummary[];
  warnings: IoWarning[];
  rejected: Rejection[];
}
