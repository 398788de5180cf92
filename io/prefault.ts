/**
 * Faults in the pages of a fresh buffer on thread-pool threads while this thread does other work. The
 * first write to each page of a fresh allocation makes the kernel find and zero a page: for a 150 MiB
 * volume that is 2-4x the time of the copy itself on a small VM. Reading /dev/zero into the buffer
 * takes those faults on another core; the values stay the zeros the allocation held.
 */
import { closeSync, openSync, read } from 'node:fs';

export interface Prefault {
  /** Resolves once bytes [start, end) have landed: from then on nothing of this writes there. */
  ready(start: number, end: number): Promise<void>;
  /** Resolves once every read has landed. */
  settled(): Promise<void>;
}

/**
 * Bytes per read. One read is in flight at a time, the next issued as the last lands, so faulting in
 * takes one core and leaves the other to the thread that asked (which returns to its event loop often
 * enough for the chain to go on: the header pass and the decode pass take a turn per file); 16 MiB
 * lets writing begin at the front while the back is still being faulted in.
 */
const CHUNK = 16 * 1024 * 1024;

const NOTHING: Prefault = { ready: async () => undefined, settled: async () => undefined };

/** Starts faulting in `bytes`, a buffer nothing else may write to where ready() has not resolved (it is zeroed). */
export function prefault(bytes: Uint8Array, chunk = CHUNK): Prefault {
  let fd: number;
  try {
    fd = openSync('/dev/zero', 'r');
  } catch {
    return NOTHING; // no /dev/zero (not Linux): the pages fault in as they are first written
  }
  const n = Math.ceil(bytes.length / chunk);
  const landed: (() => void)[] = [];
  const reads = Array.from({ length: n }, () => new Promise<void>((resolve) => landed.push(resolve)));
  const next = (i: number): void => {
    if (i === n) {
      closeSync(fd);
      return;
    }
    const offset = i * chunk;
    const done = () => {
      // a failed read only leaves pages to fault in later: the buffer still holds zeros
      landed[i]!();
      next(i + 1);
    };
    try {
      read(fd, bytes, offset, Math.min(chunk, bytes.length - offset), null, done);
    } catch {
      done();
    }
  };
  next(0);
  const all = Promise.all(reads).then(() => undefined);
  return {
    // the reads land in order: the last one the range touches is the one to wait for
    ready: async (start, end) => {
      if (end > start) await reads[Math.min(n, Math.ceil(end / chunk)) - 1];
    },
    settled: () => all,
  };
}
