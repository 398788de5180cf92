/** Restoration batches made in a worker thread: the same batches and generator states as on the main thread, the
 *  same trained weights through the loop, typed errors from the thread, and the main thread taking over when the
 *  thread is gone. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { GatedError } from '../../../core/errors.ts';
import { selectDevice } from '../../../kernels/backend.ts';
import { BatchThread, BatchThreadFailure } from '../../../pipelines/train/batch_thread.ts';
import { trainLoop } from '../../../pipelines/train/loop.ts';
import { DENOISE_DEGRADE, makeRestoreBatch, restoreTrainTask, type RestoreImage } from '../../../pipelines/train/restore_data.ts';
import { Rng } from '../../../pipelines/train/rng.ts';
import { expectSameTrainedWeights, tinyRestoreModel } from '../../_helpers/restore_model.ts';

const image = (seed: number, h = 40, w = 48): RestoreImage => ({
  name: `im${seed}`,
  h,
  w,
  clean: Float32Array.from({ length: h * w }, (_, i) => 0.5 + 0.4 * Math.sin(((i % w) + seed) / 5) * Math.cos(Math.floor(i / w) / 7)),
  levels: 255,
});
const copy = (ims: RestoreImage[]) => ims.map((im) => ({ ...im, clean: im.clean.slice() }));
const dirs: string[] = [];

beforeAll(async () => {
  await selectDevice('cpu');
});
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('BatchThread', () => {
  it('gives the batch and generator state the main thread gives, batch after batch, from planes it moved to shared memory', async () => {
    const images = [image(1), image(2, 64, 40), image(3)];
    const here = copy(images);
    const thread = new BatchThread({ images, batch: 3, patch: 32, degrade: DENOISE_DEGRADE, sample: 'area' });
    try {
      expect(images.every((im) => im.clean.buffer instanceof SharedArrayBuffer)).toBe(true);
      expect(images.every((im, i) => im.clean.every((v, j) => v === here[i]!.clean[j]))).toBe(true);
      const rng = new Rng(17);
      let state = 17;
      for (let k = 0; k < 4; k++) {
        const b = await thread.make(state);
        const ref = makeRestoreBatch(here, 3, 32, DENOISE_DEGRADE, rng, 'area');
        expect(b.state).toBe(rng.state);
        expect(b.state).not.toBe(state);
        expect(b.x).toEqual(ref.x);
        expect(b.y).toEqual(ref.y);
        state = b.state;
      }
    } finally {
      await thread.close();
    }
  });

  it('an error in making a batch arrives typed, as on the main thread; a closed thread rejects as a thread failure', async () => {
    const thread = new BatchThread({ images: [image(1, 20, 20)], batch: 2, patch: 32, degrade: DENOISE_DEGRADE, sample: 'image' });
    const e = await thread.make(1).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(GatedError);
    expect((e as GatedError).code).toBe('config');
    expect((e as GatedError).message).toContain('smaller than the 32-pixel training patch');
    await thread.close();
    await expect(thread.make(1)).rejects.toBeInstanceOf(BatchThreadFailure);
  });
});

describe('restore training with the batch thread', () => {
  it('trainLoop ends at the same weights with the batches made in the thread as on the main thread', async () => {
    const train = [image(1), image(2), image(3)];
    const o = { batch: 2, patch: 32, stepsPerEpoch: 3, degrade: DENOISE_DEGRADE, sample: 'area' as const };
    const threadImages = copy(train);
    const thread = new BatchThread({ images: threadImages, batch: 2, patch: 32, degrade: DENOISE_DEGRADE, sample: 'area' });
    const made = vi.spyOn(thread, 'make');
    const a = tinyRestoreModel();
    const b = tinyRestoreModel();
    try {
      for (const [m, task] of [[a, restoreTrainTask(train, [image(4)], o)], [b, restoreTrainTask(threadImages, [image(4)], { ...o, thread })]] as const) {
        const dir = mkdtempSync(join(tmpdir(), 'gv-bthread-'));
        dirs.push(dir);
        await trainLoop(m, task, { outDir: dir, epochs: 2, seed: 9, resume: false, optim: { lr: 3e-3 }, card: { task: 'restore' } });
      }
      expect(made).toHaveBeenCalledTimes(6); // every batch of the second run came from the thread
      expectSameTrainedWeights(a, b);
    } finally {
      a.dispose();
      b.dispose();
      await thread.close();
    }
  }, 120_000);

  it('when the thread is gone, the main thread makes the batch the thread would have made, and says so once', async () => {
    const train = [image(1), image(2)];
    const threadImages = copy(train);
    const thread = new BatchThread({ images: threadImages, batch: 2, patch: 32, degrade: DENOISE_DEGRADE, sample: 'image' });
    const lines: string[] = [];
    const o = { batch: 2, patch: 32, stepsPerEpoch: 2, degrade: DENOISE_DEGRADE, sample: 'image' as const };
    const task = restoreTrainTask(threadImages, [], { ...o, thread, log: (l) => lines.push(l) });
    const plain = restoreTrainTask(train, [], o);
    const m = tinyRestoreModel();
    try {
      const viaThread = new Rng(5);
      const here = new Rng(5);
      await task.batchLossAsync!(m, viaThread);
      plain.batchLoss(m, here);
      expect(viaThread.state).toBe(here.state);
      await thread.close();
      for (let k = 0; k < 2; k++) {
        const f = await task.batchLossAsync!(m, viaThread);
        const g = plain.batchLoss(m, here);
        expect(viaThread.state).toBe(here.state);
        expect(f().dataSync()[0]).toBe(g().dataSync()[0]);
      }
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('batches are made on the main thread from here on');
    } finally {
      m.dispose();
    }
  });
});
