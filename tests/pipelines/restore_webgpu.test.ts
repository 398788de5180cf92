/**
 * restore on WebGPU (SwiftShader here): results come back from the GPU asynchronously (WebGPU in Node has no
 * synchronous read-back) and equal the same model's output on cpu, whole-image and tiled.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Volume } from '../../io/volume.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { writeNiftiFile } from '../../io/nifti/write.ts';
import { restoreBatch, restoreVolume } from '../../pipelines/restore.ts';
import { loadTaskModel, saveTaskModel, type TaskModel } from '../../pipelines/task_model.ts';
import { tinyRestoreModel } from '../_helpers/restore_model.ts';

let model: TaskModel;
const dir = mkdtempSync(join(tmpdir(), 'gv-restore-gpu-'));

// the model is built and saved on cpu, then loaded again on each backend (tensors never cross backends:
// moving a WebGPU tensor to cpu reads it synchronously, which Node's WebGPU cannot do)
beforeAll(async () => {
  await selectDevice('cpu');
  model = tinyRestoreModel();
  await saveTaskModel(dir, model);
}, 120_000);

afterAll(async () => {
  model?.dispose();
  await selectDevice('cpu');
  rmSync(dir, { recursive: true, force: true });
});

describe('restore on WebGPU', () => {
  it('a head with residual blocks equals cpu, whole and replayed tile by tile', async () => {
    await selectDevice('cpu');
    const withBlocks = tinyRestoreModel('restore_blocks', 2);
    const sub = join(dir, 'blocks');
    await saveTaskModel(sub, withBlocks);
    const [nx, ny] = [70, 41];
    const data = new Uint8Array(nx * ny);
    for (let i = 0; i < data.length; i++) data[i] = Math.round(128 + 100 * Math.sin(i * 0.21) * Math.cos(i * 0.013));
    const vol: Volume = {
      data, shape: [nx, ny, 1], spacing: [1, 1, 1], dtype: 'uint8',
      affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
      meta: { format: 'image', components: 'scalar', warnings: [] },
    };
    const cpuWhole = await restoreVolume(vol, withBlocks);
    const cpuTiled = await restoreVolume(vol, withBlocks, { tile: 32, overlap: 8 });
    // the same model with each block's second conv at zero (every block the identity)
    const idle = tinyRestoreModel('restore_blocks', 2);
    const w = await idle.exportWeights();
    for (const [n, t] of w) if (/^head\.block\.\d+\.b\./.test(n)) w.set(n, { shape: t.shape, data: new Float32Array(t.data.length) });
    idle.loadWeights(w);
    const plain = await restoreVolume(vol, idle);
    idle.dispose();
    withBlocks.dispose();
    await selectDevice('webgpu', { allowSoftware: true });
    const gpu = await loadTaskModel(sub);
    const gpuWhole = await restoreVolume(vol, gpu);
    const gpuTiled = await restoreVolume(vol, gpu, { tile: 32, overlap: 8 });
    expect(gpu.replays.stats.replayed).toBeGreaterThanOrEqual(2);
    gpu.dispose();
    await selectDevice('cpu');
    let differs = 0;
    for (let i = 0; i < data.length; i++) {
      expect(Math.abs(gpuWhole.data[i]! - cpuWhole.data[i]!)).toBeLessThanOrEqual(1);
      expect(Math.abs(gpuTiled.data[i]! - cpuTiled.data[i]!)).toBeLessThanOrEqual(1);
      if (cpuWhole.data[i] !== plain.data[i]) differs++;
    }
    // the blocks take part: the output is not that of the same model with idle blocks
    expect(differs).toBeGreaterThan(data.length / 10);
  });

  it('equals cpu on a 16-bit 2-slice volume, whole and tiled', async () => {
    const [nx, ny, nz] = [45, 38, 2];
    const data = new Uint16Array(nx * ny * nz);
    for (let i = 0; i < data.length; i++) data[i] = Math.round(30000 + 20000 * Math.sin(i * 0.37) * Math.cos(i * 0.011));
    const vol: Volume = {
      data, shape: [nx, ny, nz], spacing: [1, 1, 1], dtype: 'uint16',
      affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
      meta: { format: 'nifti', components: 'scalar', warnings: [] },
    };
    const cpuWhole = await restoreVolume(vol, model);
    const cpuTiled = await restoreVolume(vol, model, { tile: 32, overlap: 8 });
    await selectDevice('webgpu', { allowSoftware: true });
    const gpuModel = await loadTaskModel(dir);
    const gpuWhole = await restoreVolume(vol, gpuModel);
    const gpuTiled = await restoreVolume(vol, gpuModel, { tile: 32, overlap: 8 });
    // the tiles share one shape: from the second on the model's forward is recorded, then replayed
    expect(gpuModel.replays.stats.replayed).toBeGreaterThanOrEqual(4);
    gpuModel.dispose();
    let changed = 0;
    for (let i = 0; i < data.length; i++) {
      expect(Math.abs(gpuWhole.data[i]! - cpuWhole.data[i]!)).toBeLessThanOrEqual(1);
      expect(Math.abs(gpuTiled.data[i]! - cpuTiled.data[i]!)).toBeLessThanOrEqual(1);
      if (gpuWhole.data[i] !== data[i]) changed++;
    }
    expect(changed).toBeGreaterThan(data.length / 4);
  });

  it('with --tta equals cpu on a slice whose padded sides differ (64×96, turned 96×64), replaying both shapes', async () => {
    const [nx, ny, nz] = [70, 38, 1];
    const data = new Float32Array(nx * ny * nz).map((_, i) => Math.sin(i * 0.37) * Math.cos(i * 0.011));
    const vol: Volume = {
      data, shape: [nx, ny, nz], spacing: [1, 1, 1], dtype: 'float32',
      affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
      meta: { format: 'nifti', components: 'scalar', warnings: [] },
    };
    await selectDevice('cpu');
    const cpu = await restoreVolume(vol, model, { tta: true });
    await selectDevice('webgpu', { allowSoftware: true });
    const gpuModel = await loadTaskModel(dir);
    const gpu = await restoreVolume(vol, gpuModel, { tta: true });
    // 8 forwards, 4 of each shape: per shape one direct, one recorded, then replayed
    expect(gpuModel.replays.stats.replayed).toBe(4);
    gpuModel.dispose();
    let max = 0;
    for (let i = 0; i < data.length; i++) max = Math.max(max, Math.abs(gpu.data[i]! - cpu.data[i]!));
    expect(max).toBeLessThan(1e-5);
  });

  it('says in the run manifest how each forward ran: first direct, then recorded, then replayed', async () => {
    const [nx, ny, nz] = [40, 40, 1];
    const data = new Float32Array(nx * ny * nz).map((_, i) => Math.sin(i * 0.1));
    const vol: Volume = {
      data, shape: [nx, ny, nz], spacing: [1, 1, 1], dtype: 'float32',
      affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
      meta: { format: 'nifti', components: 'scalar', warnings: [] },
    };
    const input = join(dir, 'in.nii');
    await writeNiftiFile(input, vol);
    await selectDevice('webgpu', { allowSoftware: true });
    const gpuModel = await loadTaskModel(dir);
    const res = await restoreBatch([input], gpuModel, { outDir: join(dir, 'out'), modelName: 'tiny', device: 'webgpu', tile: 32, overlap: 8 });
    gpuModel.dispose();
    expect(res.records[0]!.status).toBe('done');
    // 2 × 2 tiles of one shape
    expect(res.records[0]!.forwards).toEqual({ direct: 1, recorded: 1, replayed: 2 });
  });
});
