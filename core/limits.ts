/**
 * Resource caps for untrusted input. One object, passed down from the CLI/service; defaults suit a
 * workstation reading clinical CT/MR. Every reader checks sizes against these before it allocates.
 */
export interface Limits {
  /** Largest input file (bytes) read into memory. */
  maxFileBytes: number;
  /** Largest decompressed payload (deflate, gzip, zip entry) in bytes. */
  maxInflatedBytes: number;
  /** Largest voxel buffer a reader may allocate (bytes). */
  maxVoxelBytes: number;
  /** Largest 2D image in pixels (sharp's limitInputPixels). */
  maxImagePixels: number;
  /** Deepest DICOM sequence nesting accepted (DCMTK's default). */
  maxSequenceDepth: number;
  /** Zip: most entries, largest entry and largest total, counted on inflated bytes. */
  maxZipEntries: number;
  maxZipEntryBytes: number;
  maxZipTotalBytes: number;
  /** Most files in one folder walk. */
  maxFiles: number;
  /** Sandboxed decode: old-space cap (MiB) and wall-clock limit (ms) for the child process. */
  sandboxHeapMb: number;
  sandboxTimeoutMs: number;
  /** Resident-memory cap (MiB) for the child, wasm and buffers included; checked by the parent. */
  sandboxRssMb: number;
  /** Threads decoding a series' compressed frames: 0 picks min(cores, 4); 1 decodes on the reading thread. */
  decodeThreads: number;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFileBytes: 2 * GiB,
  maxInflatedBytes: 2 * GiB,
  maxVoxelBytes: 4 * GiB,
  maxImagePixels: 100_000_000,
  maxSequenceDepth: 64,
  maxZipEntries: 20_000,
  maxZipEntryBytes: 1 * GiB,
  maxZipTotalBytes: 8 * GiB,
  maxFiles: 100_000,
  sandboxHeapMb: 4096,
  sandboxTimeoutMs: 300_000,
  sandboxRssMb: 12_288,
  decodeThreads: 0,
});

export function resolveLimits(overrides: Partial<Limits> = {}): Limits {
  return { ...DEFAULT_LIMITS, ...overrides };
}

export { GiB, MiB };
