/** The child side of sandbox.ts: runs one named task and reports progress, result or a typed error. */
import { toGatedError } from '../core/errors.ts';
import { SANDBOX_PRELOAD, SANDBOX_TASKS } from './sandbox_tasks.ts';
import { packLarge } from './transfer.ts';

// Started ahead of its task: load that task's modules while the caller is still getting ready. A failure
// here is reported by the task itself, which imports the same modules.
const hint = process.argv[2];
if (hint && Object.hasOwn(SANDBOX_PRELOAD, hint)) SANDBOX_PRELOAD[hint]!().catch(() => undefined);

process.once('message', async (msg: { task: string; payload: unknown }) => {
  const send = (m: unknown) => new Promise<void>((res) => process.send!(m, () => res()));
  try {
    const run = SANDBOX_TASKS[msg.task];
    if (!run) throw toGatedError(`unknown sandbox task '${msg.task}'`, 'internal');
    // Progress crosses the pipe at most every 50 ms (and always at the end): one message per file was a
    // tenth of the load time of a 300-file series.
    let last = 0;
    const progress = (done: number, total: number, what: string) => {
      const now = performance.now();
      if (done < total && now - last < 50) return;
      last = now;
      process.send!({ type: 'progress', done, total, what });
    };
    const value = await run(msg.payload, progress);
    await send({ type: 'result', value: packLarge(value) });
  } catch (e) {
    await send({ type: 'error', error: toGatedError(e, 'internal').toJSON() });
  }
  process.exit(0);
});
