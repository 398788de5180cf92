/**
 * The worker-thread side of sandbox_worker.ts: runs one named task and reports progress, result or a typed
 * error. Native decoders are refused here (see sandbox_guard.ts); large arrays of the result are moved to
 * the caller, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { forbidNativeDecoders } from './sandbox_guard.ts';
import { preloadTask, runTask, type SandboxMessage } from './sandbox_run.ts';
import { transferables } from './transfer.ts';

forbidNativeDecoders();
preloadTask((workerData as { preload?: string } | undefined)?.preload);

const port = parentPort!;
port.once('message', async (msg: { task: string; payload: unknown }) => {
  const post = (m: SandboxMessage) => {
    if (m.type !== 'result') return port.postMessage(m);
    try {
      port.postMessage(m, transferables(m.value));
    } catch {
      // a buffer that cannot be moved (a WebAssembly memory's): copy instead
      port.postMessage(m);
    }
  };
  // the supervisor ends this thread once the result is in (freeing its memory); nothing is left to do here
  await runTask(msg, post, (v) => v);
});
