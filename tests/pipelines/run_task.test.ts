/** runTask, the entry of long-lived workers: one model load for many jobs, and the caller's reader limits applied. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { ModelCache, runTask } from '../../pipelines/run_task.ts';
import { shippedModelsDir } from '../../pipelines/task_model.ts';
import { SKIMAGE_DATA, requireData } from '../_helpers/testdata.ts';

const cache = new ModelCache();
afterAll(() => cache.dispose());
const dir = mkdtempSync(join(tmpdir(), 'gv-runtask-'));

it('segments with a cached model and applies the reader limits it is given', async () => {
  const sample = join(shippedModelsDir(), 'samples', 'colin27_t1_2mm.nii.gz');
  const ok = await runTask({ task: 'segment', model: 'brain', input: sample, outDir: join(dir, 'a'), device: 'wasm' }, cache);
  expect(await cache.get('brain')).toBe(await cache.get(join(shippedModelsDir(), 'brain'))); // loaded once, by name or folder
  expect(ok.outputs).toContain('colin27_t1_2mm.seg.nii.gz');
  expect(ok.model.name).toBe('brain');
  const png = join(requireData(SKIMAGE_DATA), 'camera.png'); // 512 x 512
  const rejected = await runTask({ task: 'segment', model: 'brain', input: png, outDir: join(dir, 'b'), device: 'wasm', limits: { maxImagePixels: 100_000 } }, cache).then(
    () => 'accepted',
    (e: unknown) => (e instanceof GatedError ? e.code : String(e)),
  );
  expect(rejected).toBe('too_many_pixels');
  await expect(runTask({ task: 'restore', model: 'brain', input: sample, outDir: join(dir, 'c'), device: 'wasm' }, cache)).rejects.toThrow(/segment model/);
}, 180_000);
