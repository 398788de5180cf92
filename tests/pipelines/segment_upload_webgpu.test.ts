/**
 * On WebGPU (SwiftShader here) the stored slices go up through reused host arrays: a group's pieces through one
 * scratch array, and every group through one array of the call. Each must have left for the device before its
 * array is refilled, so the joined tensor equals the stored slices, and a slice's labels within a run of groups
 * equal its labels alone.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { normalizerFor } from '../../pipelines/preprocess.ts';
import { compileAhead, predictLabels, uploadSlices } from '../../pipelines/segment_volume.ts';
import { buildTaskModel, loadTaskModel, saveTaskModel } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-segup-'));

afterAll(async () => {
  await selectDevice('cpu');
  rmSync(dir, { recursive: true, force: true });
});

it('pieces uploaded through one scratch array join into the stored slices', async () => {
  await selectDevice('webgpu', { allowSoftware: true });
  const [nx, ny, nz] = [33, 20, 17];
  const plane = nx * ny;
  const data = Int16Array.from({ length: plane * nz }, (_, i) => ((i * 7919) % 4001) - 2000);
  // 3 slices per piece: pieces of 3, 3, 3, 3 and a last one of 2 for [1, 15)
  for (const [z0, z1] of [[1, 15], [0, 17]] as const) {
    const t = uploadSlices(data, z0, z1, plane, ny, nx, 3 * plane + 5);
    const got = (await t.data()) as Float32Array;
    t.dispose();
    expect(got.length).toBe((z1 - z0) * plane);
    let same = 0;
    for (let i = 0; i < got.length; i++) if (got[i] === data[z0 * plane + i]) same++;
    expect(same).toBe(got.length);
  }
}, 60_000);

let saved = false;
/** A small segmentation model with random weights, built and saved on cpu once (tensors never cross backends). */
async function saveModelOnce(): Promise<void> {
  if (saved) return;
  await selectDevice('cpu');
  const spec = specFromPreset('seg_test', 'segment', 'up', ['a', 'b']);
  const built = buildTaskModel({ ...spec, input: { ...spec.input, spacing: [1.5, 1.5] } }, 4);
  for (const v of built.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', 4)));
  await saveTaskModel(dir, built);
  built.dispose();
  saved = true;
}

it('groups sharing one upload array give each slice its labels alone', async () => {
  await saveModelOnce();
  await selectDevice('webgpu', { allowSoftware: true });
  const m = await loadTaskModel(dir);
  const [nx, ny, nz] = [40, 33, 5];
  const plane = nx * ny;
  const data = Int16Array.from({ length: plane * nz }, (_, i) => ((i * 7919) % 1201) - 200 + ((i / plane) | 0) * 97);
  const norm = normalizerFor(data, 1, 0, { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 }, true);
  const all = await predictLabels(m, data, [nx, ny, nz], [1, 1, 1], { batch: 2 }, undefined, norm);
  // groups [0, 1], [2, 3], [4]: the second and third refill the array
  for (const z of [2, 4]) {
    const alone = await predictLabels(m, data, [nx, ny, nz], [1, 1, 1], { batch: 2 }, [z], norm);
    expect(Buffer.from(all.subarray(z * plane, (z + 1) * plane)).equals(Buffer.from(alone.subarray(z * plane, (z + 1) * plane)))).toBe(true);
  }
  expect(new Set(all).size).toBeGreaterThan(1);
  m.dispose();
}, 120_000);

it('compiling ahead leaves no weight built by programs that did not run: the labels equal those of a model never compiled ahead', async () => {
  await saveModelOnce();
  await selectDevice('webgpu', { allowSoftware: true });
  // each load leaves the packed projections to be built on first use
  const [nx, ny, nz] = [40, 33, 5];
  const plane = nx * ny;
  const data = Int16Array.from({ length: plane * nz }, (_, i) => ((i * 104729) % 1301) - 300 + ((i / plane) | 0) * 61);
  const norm = normalizerFor(data, 1, 0, { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 }, true);
  const plain = await loadTaskModel(dir);
  const want = await predictLabels(plain, data, [nx, ny, nz], [1, 1, 1], {}, undefined, norm);
  plain.dispose();
  const ahead = await loadTaskModel(dir);
  await compileAhead(ahead, [nx, ny, nz], [1, 1, 1], norm);
  const got = await predictLabels(ahead, data, [nx, ny, nz], [1, 1, 1], {}, undefined, norm);
  ahead.dispose();
  expect(new Set(want).size).toBeGreaterThan(1);
  expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
}, 120_000);
