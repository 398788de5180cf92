/** The child side of sandbox.ts: runs one named task and reports progress, result or a typed error. */
import { toGatedError } from '../core/errors.ts';
import { SANDBOX_TASKS } from './sandbox_tasks.ts';
import { packLarge } from './transfer.ts';

process.once('message', async (msg: { task: string; payload: unknown }) => {
  const send = (m: unknown) => new Promise<void>((res) => process.send!(m, () => res()));
  try {
    const run = SANDBOX_TASKS[msg.task];
    if (!run) throw toGatedError(`unknown sandbox task '${msg.task}'`, 'internal');
    const value = await run(msg.payload, (done, total, what) => void process.send!({ type: 'progress', done, total, what }));
    await send({ type: 'result', value: packLarge(value) });
  } catch (e) {
    await send({ type: 'error', error: toGatedError(e, 'internal').toJSON() });
  }
  process.exit(0);
});
