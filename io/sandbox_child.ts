/** The child-process side of sandbox.ts: runs one named task and reports progress, result or a typed error. */
import { preloadTask, runTask } from './sandbox_run.ts';
import { packLarge } from './transfer.ts';

preloadTask(process.argv[2]);

process.once('message', async (msg: { task: string; payload: unknown }) => {
  await runTask(msg, (m) => new Promise<void>((res) => process.send!(m, () => res())), packLarge);
  process.exit(0);
});
