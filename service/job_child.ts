/**
 * A worker child of the embedded pool: receives one job at a time over IPC, keeps models loaded between jobs,
 * answers with the outcome. Runs with the heap cap the pool gives it; if it dies, only its job is affected.
 */
import { executeSpec, newModelCache, type JobSpec } from './job_spec.ts';

export async function runJobChild(): Promise<void> {
  if (!process.send) throw new Error('the job child must be started with an IPC channel');
  const cache = await newModelCache();
  process.on('message', (m: { type: 'run'; spec: JobSpec }) => {
    if (m?.type !== 'run') return;
    void executeSpec(m.spec, cache).then((outcome) => process.send!({ type: 'outcome', id: m.spec.id, attempt: m.spec.attempt, outcome }));
  });
  // the parent going away (even by kill -9) ends the child
  process.on('disconnect', () => process.exit(0));
  process.send({ type: 'ready' });
  await new Promise<never>(() => undefined);
}
