/** What the HTTP layer needs from whatever runs the jobs (the embedded child-process pool or BullMQ over redis). */
import type { Job } from './store.ts';

export interface Dispatcher {
  /** A new job was stored as queued; start it when a worker is free. */
  submit(job: Job): Promise<void>;
  /** False while no worker can take jobs (readiness). */
  ready(): boolean;
  close(): Promise<void>;
}
