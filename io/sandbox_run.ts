/**
 * One task run on the decoding side of the sandbox, whether that is a child process (sandbox_child.ts) or
 * a worker thread (sandbox_worker_entry.ts): progress throttled, the result or a typed error reported.
 */
import { toGatedError } from '../core/errors.ts';
import { nativeWasRefused } from './sandbox_guard.ts';
import { SANDBOX_PRELOAD, SANDBOX_TASKS } from './sandbox_tasks.ts';

export type SandboxMessage =
  | { type: 'progress'; done: number; total: number; what: string }
  | { type: 'result'; value: unknown }
  | { type: 'error'; error: { code?: unknown; message?: unknown; details?: unknown } }
  /** Worker threads only: the input needs a native decoder; run the task again in a child process. */
  | { type: 'needs_process' };

/** Started ahead of its task: load that task's modules while the caller is still getting ready. */
export function preloadTask(hint: string | undefined): void {
  // a failure here is reported by the task itself, which imports the same modules
  if (hint && Object.hasOwn(SANDBOX_PRELOAD, hint)) SANDBOX_PRELOAD[hint]!().catch(() => undefined);
}

/** Runs `task`; `post` sends a message (and resolves once it is sent), `pack` prepares the result for the trip. */
export async function runTask(msg: { task: string; payload: unknown }, post: (m: SandboxMessage) => Promise<void> | void, pack: (v: unknown) => unknown): Promise<void> {
  try {
    const run = SANDBOX_TASKS[msg.task];
    if (!run) throw toGatedError(`unknown sandbox task '${msg.task}'`, 'internal');
    // Progress crosses at most every 50 ms (and always at the end): one message per file was a tenth of
    // the load time of a 300-file series.
    let last = 0;
    const progress = (done: number, total: number, what: string) => {
      const now = performance.now();
      if (done < total && now - last < 50) return;
      last = now;
      void post({ type: 'progress', done, total, what });
    };
    const value = await run(msg.payload, progress);
    await post({ type: 'result', value: pack(value) });
  } catch (e) {
    await post(nativeWasRefused() ? { type: 'needs_process' } : { type: 'error', error: toGatedError(e, 'internal').toJSON() });
  }
}
