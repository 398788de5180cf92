/** Task models: save + load gives the same predictions; damaged weights and manifests are refused with codes. */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { buildTaskModel, loadTaskModel, resolveModelDir, saveTaskModel, shippedModelsDir, validateTaskManifest } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';

beforeAll(async () => {
  await selectDevice('cpu');
});

const codeOf = async (p: Promise<unknown>) => p.then(() => 'none', (e: unknown) => (e instanceof GatedError ? e.code : String(e)));

it('round-trips through model.json + safetensors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gv-tm-'));
  const m = buildTaskModel(specFromPreset('seg_test', 'segment', 'rt', ['bg', 'fg']), 3);
  // perturb every weight so a loader that silently kept fresh initial values would fail
  for (const v of m.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.05, 'float32', 9)));
  const manifest = await saveTaskModel(dir, m, { note: 'test' });
  const back = await loadTaskModel(dir);
  expect(back.sha256).toBe(manifest.weights.sha256);
  const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const a = m.predict(x).dataSync();
  const b = back.predict(x).dataSync();
  expect(Array.from(b)).toEqual(Array.from(a));
  // one flipped byte in the weights: refused before anything runs
  const w = readFileSync(join(dir, 'weights.safetensors'));
  w[w.length - 3] = w[w.length - 3]! ^ 0xff;
  writeFileSync(join(dir, 'weights.safetensors'), w);
  expect(await codeOf(loadTaskModel(dir))).toBe('corrupt_weights');
  tf.dispose(x);
  m.dispose();
  back.dispose();
});

it('validates manifests and names', async () => {
  expect(() => validateTaskManifest({ format: 'gatedvision-task-model', version: 1 })).toThrow(/name must be a string.*backbone must be/);
  const shipped = JSON.parse(readFileSync(join(shippedModelsDir(), 'brain', 'model.json'), 'utf8'));
  expect(validateTaskManifest(shipped).name).toBe('brain');
  expect(() => validateTaskManifest({ ...shipped, extra: 1 })).toThrow(/unknown key 'extra'/);
  expect(() => validateTaskManifest({ ...shipped, classes: ['only'] })).toThrow(/at least 2 classes/);
  expect(() => resolveModelDir('Bad Name')).toThrow(/not a model name/);
  expect(await codeOf(loadTaskModel('no_such_model'))).toBe('not_found');
});

it('the shipped models load (weights match their sha256) and the brain model declares its post-processing', async () => {
  const brain = await loadTaskModel('brain');
  expect(brain.manifest.classes).toEqual(['background', 'brain']);
  // the model card's measured Dice is with the largest component kept and enclosed holes filled
  expect(brain.manifest.postprocess).toEqual({ largestComponent: true, fillHoles: true });
  brain.dispose();
  const denoise = await loadTaskModel(join(shippedModelsDir(), 'denoise'));
  expect(denoise.manifest.task).toBe('restore');
  denoise.dispose();
});
