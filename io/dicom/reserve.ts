/**
 * The output volume of a series, allocated as soon as its first header is read (that header's frame size
 * times the number of files) and faulted in on another core while the other headers are read, so the
 * decode pass writes into memory the kernel has already mapped. decodePlan takes it when the plan needs
 * exactly that many bytes; otherwise it is dropped and the volume is allocated as before.
 */
import { availableParallelism, loadavg } from 'node:os';
import type { Limits } from '../../core/limits.ts';
import { prefault, type Prefault } from '../prefault.ts';
import { allocate, DTYPE_BYTES, type DType, type VoxelArray } from '../volume.ts';
import type { DicomHeader } from './parse.ts';

/** Smaller volumes fault in quickly enough where they are written. */
export const RESERVE_MIN_BYTES = 16 * 1024 * 1024;

let reserved: { buffer: ArrayBuffer; fault: Prefault } | undefined;

/** Volumes that were the reserved buffer, so far in this thread (tests check that the path ran). */
export const reserveCounters = { taken: 0 };

/**
 * Reserves (and starts faulting in) a volume of `files` objects like `h`, in its stored sample type.
 * Only with a core to spare (limits.volumePrefault): where every core is busy, faulting in ahead only
 * adds a second zeroing of the volume, and on a shared 2-core machine it doubled the header pass.
 */
export function reserveVolume(h: Pick<DicomHeader, 'rows' | 'columns' | 'samplesPerPixel' | 'numberOfFrames' | 'bitsAllocated'>, files: number, limits: Limits): void {
  if (reserved || h.bitsAllocated < 8 || !coreToSpare(limits)) return;
  const bytes = h.rows * h.columns * h.samplesPerPixel * h.numberOfFrames * files * (h.bitsAllocated / 8);
  // never more than a reader may allocate: a plan that needs more is refused before it allocates anything
  if (!Number.isSafeInteger(bytes) || bytes < RESERVE_MIN_BYTES || bytes > limits.maxVoxelBytes) return;
  const buffer = new ArrayBuffer(bytes);
  reserved = { buffer, fault: prefault(new Uint8Array(buffer)) };
}

/**
 * The reserved volume as `dtype` × `length` when it has exactly that many bytes (zeros, like a fresh
 * allocation), else undefined; either way the reservation is used up. Its pages may still be faulting
 * in: write a byte range only after `fault.ready` for it has resolved, and anything else after
 * `fault.settled`.
 */
export function takeReserved(dtype: DType, length: number): { data: VoxelArray; fault: Prefault } | undefined {
  const r = reserved;
  reserved = undefined;
  if (!r || r.buffer.byteLength !== length * DTYPE_BYTES[dtype]) return undefined;
  reserveCounters.taken++;
  return { data: viewAs(dtype, r.buffer, length), fault: r.fault };
}

/** Ends a reservation no plan took (its memory goes with the next collection, once its reads have landed). */
export function dropReserved(): void {
  reserved = undefined;
}

function coreToSpare(limits: Limits): boolean {
  if (limits.volumePrefault !== 'auto') return limits.volumePrefault === 'always';
  return loadavg()[0]! < availableParallelism() - 0.5;
}

function viewAs(dtype: DType, buffer: ArrayBuffer, length: number): VoxelArray {
  const probe = allocate(dtype, 0);
  const Ctor = probe.constructor as new (b: ArrayBuffer, o: number, n: number) => VoxelArray;
  return new Ctor(buffer, 0, length);
}
