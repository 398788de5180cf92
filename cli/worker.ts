/** `gatedvision worker --queue redis://...`: runs service jobs from BullMQ (the data folder must be shared with the server). */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';

export const workerCommand = defineCommand({
  meta: { name: 'worker', description: 'Run service jobs from a redis queue (scale-out for `gatedvision serve --queue`)' },
  args: {
    queue: { type: 'string', description: 'redis://host:port, the same as the server\'s --queue' },
    concurrency: { type: 'string', description: 'jobs at once in this process', default: '1' },
    device: { type: 'string', description: 'auto | webgpu | wasm | cpu | tensorflow', default: 'auto' },
    'lock-s': { type: 'string', description: 'seconds before a job of a dead worker is handed to another', default: '30' },
    child: { type: 'boolean', description: 'internal: run as a child of the embedded pool (IPC)' },
  },
  async run({ args }) {
    if (args.child) {
      const { runJobChild } = await import('../service/job_child.ts');
      await runJobChild();
      return;
    }
    if (!args.queue || !/^rediss?:\/\//.test(args.queue)) throw new GatedError('usage', '--queue redis://host:port is required');
    const { runRedisWorker } = await import('../service/queue_redis.ts');
    const lock = Number(args['lock-s']);
    if (!Number.isFinite(lock) || lock < 1) throw new GatedError('usage', '--lock-s must be a number >= 1');
    await runRedisWorker({ url: args.queue, concurrency: Number(args.concurrency) || 1, device: args.device as never, lockMs: lock * 1000 });
  },
});
