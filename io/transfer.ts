/**
 * Moving large typed arrays out of the sandbox child: IPC structured clone copies them through a pipe
 * (seconds for a CT volume), so arrays above a threshold travel through a temporary file in shared
 * memory (/dev/shm when present) and only a small marker crosses the pipe.
 */
import { readFileSync, readdirSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MessageChannel } from 'node:worker_threads';

const THRESHOLD = 1 << 20;
const CTORS = { Uint8Array, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array, Float64Array } as const;
type CtorName = keyof typeof CTORS;

interface Marker {
  __gvFile: string;
  type: CtorName;
}

function scratchDir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/** Child side: replaces big typed arrays with file markers. */
export function packLarge(value: unknown): unknown {
  // a volume decoded by several threads lives in shared memory, which cannot cross into another process
  if (ArrayBuffer.isView(value) && !(value instanceof DataView) && value.byteLength < THRESHOLD && value.buffer instanceof SharedArrayBuffer) {
    return (value as unknown as { slice(): unknown }).slice();
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView) && value.byteLength >= THRESHOLD) {
    const type = value.constructor.name as CtorName;
    if (!(type in CTORS)) return value;
    const file = join(scratchDir(), `gatedvision-${process.pid}-${randomBytes(8).toString('hex')}.bin`);
    writeFileSync(file, new Uint8Array(value.buffer, value.byteOffset, value.byteLength), { mode: 0o600 });
    return { __gvFile: file, type } satisfies Marker;
  }
  if (Array.isArray(value)) return value.map(packLarge);
  if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, packLarge(v)]));
  }
  return value;
}

/**
 * Worker side: the buffers of big typed arrays in `value`, to be moved (not copied) to the caller with
 * postMessage. Shared memory is shared anyway and is left out.
 */
export function transferables(value: unknown, out: Set<ArrayBuffer> = new Set()): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    if (value.byteLength >= THRESHOLD && value.buffer instanceof ArrayBuffer) out.add(value.buffer);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) transferables(v, out);
  }
  return [...out];
}

/** Whether a packed value carries any array through a transfer file. */
export function holdsTransferFiles(value: unknown): boolean {
  if (!value || typeof value !== 'object' || ArrayBuffer.isView(value)) return false;
  if ('__gvFile' in value) return true;
  return Object.values(value).some(holdsTransferFiles);
}

/** Parent side: reads the files back (and deletes them). */
export function unpackLarge(value: unknown): unknown {
  if (value && typeof value === 'object' && '__gvFile' in value) {
    const m = value as Marker;
    try {
      const buf = readFileSync(m.__gvFile);
      const Ctor = CTORS[m.type];
      // Large reads get their own, zero-offset ArrayBuffer; copy only if that ever is not so.
      const ab = buf.byteOffset % Ctor.BYTES_PER_ELEMENT === 0 ? buf.buffer : new Uint8Array(buf).buffer;
      const off = ab === buf.buffer ? buf.byteOffset : 0;
      return new Ctor(ab, off, buf.byteLength / Ctor.BYTES_PER_ELEMENT);
    } finally {
      try {
        unlinkSync(m.__gvFile);
      } catch {
        // already gone
      }
    }
  }
  if (Array.isArray(value)) return value.map(unpackLarge);
  if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unpackLarge(v)]));
  }
  return value;
}

/** Removes any transfer files a child left behind (it was killed between writing and reporting). */
export function removeLeftovers(childPid: number | undefined): void {
  if (childPid === undefined) return;
  const dir = scratchDir();
  for (const f of readdirSync(dir)) {
    if (f.startsWith(`gatedvision-${childPid}-`)) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        // raced with another cleanup
      }
    }
  }
}

/** Buffers smaller than this are left to the garbage collector (and may be slices of Node's shared pool). */
const RELEASE_MIN_BYTES = 16 * 1024 * 1024;

/**
 * Gives a large buffer's memory back to the system within the next turn of the event loop, instead of
 * whenever the collector or the thread's end gets to it: the buffer is moved into a message that is
 * dropped unread, and is empty (detached) here from then on. Unmapping a 150 MiB volume takes ~12 ms; a
 * conversion releases it while its closing fsync waits, not after its result.
 */
export function releaseNow(buffer: ArrayBufferLike): void {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < RELEASE_MIN_BYTES) return;
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(null, [buffer]);
  } catch {
    // a buffer that cannot be moved (a WebAssembly memory's) is left to the collector
  } finally {
    port1.close();
    port2.close();
  }
}
