/**
 * The batch thread of `train --task restore` (started by batch_thread.ts): makes each batch from the generator
 * state it is sent and answers with the batch and the state after it, so the main thread can issue the step on
 * the device meanwhile. The images arrive once, in shared memory.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toGatedError } from '../../core/errors.ts';
import { makeRestoreBatch, type DegradeConfig, type PatchSampling, type RestoreImage } from './restore_batch.ts';
import { Rng } from './rng.ts';

export interface BatchThreadData {
  images: RestoreImage[];
  batch: number;
  patch: number;
  degrade: DegradeConfig;
  sample: PatchSampling;
}

const port = parentPort;
if (port) {
  const d = workerData as BatchThreadData;
  port.on('message', (m: { id: number; state: number }) => {
    try {
      const rng = new Rng(m.state);
      const { x, y } = makeRestoreBatch(d.images, d.batch, d.patch, d.degrade, rng, d.sample);
      port.postMessage({ id: m.id, x, y, state: rng.state }, [x.buffer as ArrayBuffer, y.buffer as ArrayBuffer]);
    } catch (e) {
      port.postMessage({ id: m.id, error: toGatedError(e).toJSON() });
    }
  });
}
