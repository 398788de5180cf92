/**
 * The memory-saving paths of `segment` give exactly the bytes of the plain ones: the NIfTI written by streaming
 * gzip equals writeNifti's buffer; a group of slices uploaded in pieces equals the whole, and groups sharing one
 * upload array give each slice its labels as if alone; labels written over
 * the input's own buffer equal labels in a fresh array (the tight cases: stored type as narrow as the labels,
 * one slice per group, packed and plain read-back); and a batch without previews (which lets the input's buffer
 * hold the labels) writes the same label file as one with them, and records its resident memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNifti, writeNiftiFile } from '../../io/nifti/write.ts';
import type { Volume } from '../../io/volume.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { normalizerFor } from '../../pipelines/preprocess.ts';
import { segmentBatch } from '../../pipelines/segment.ts';
import { predictLabels, uploadSlices } from '../../pipelines/segment_volume.ts';
import { buildTaskModel, saveTaskModel, type TaskModel } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-segmem-'));
const eye = [[0.9, 0, 0, -20], [0, 1.1, 0, 5], [0, 0, 2, 1], [0, 0, 0, 1]];

function vol(data: Volume['data'], shape: number[], dtype: Volume['dtype'], extra: Partial<Volume['meta']> = {}): Volume {
  return { data, shape, spacing: [0.9, 1.1, 2], affine: eye, dtype, meta: { format: 'nifti', components: 'scalar', warnings: [], ...extra } };
}

function model(K: number, seed: number): TaskModel {
  const spec = specFromPreset('seg_test', 'segment', 'mem', Array.from({ length: K }, (_, k) => `c${k}`));
  const m = buildTaskModel({ ...spec, input: { ...spec.input, spacing: [1.5, 1.5] }, postprocess: { largestComponent: true, fillHoles: true } }, K + seed);
  // larger random weights, so that every class wins somewhere
  for (const v of m.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', K + seed)));
  return m;
}

beforeAll(async () => {
  await selectDevice('cpu');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('NIfTI written by streaming', () => {
  const cases: [string, Volume][] = [
    ['uint8 labels, several gzip steps', vol(Uint8Array.from({ length: 160 * 150 * 60 }, (_, i) => ((i % 160) - 80) ** 2 + (((i / 160) | 0) % 150 - 75) ** 2 < 3000 + (i % 7) ? 1 : 0), [160, 150, 60], 'uint8')],
    ['int16 with a rescale', vol(Int16Array.from({ length: 31 * 17 * 5 }, (_, i) => ((i * 7919) % 4001) - 2000), [31, 17, 5], 'int16', { rescale: { slope: 0.5, intercept: -3 } })],
    ['NIfTI-2 (a side over 32767)', vol(Uint8Array.from({ length: 40000 }, (_, i) => i % 251), [40000, 1, 1], 'uint8')],
    ['4D float32', vol(Float32Array.from({ length: 6 * 5 * 4 * 3 }, (_, i) => Math.sin(i) * 1e3), [6, 5, 4, 3], 'float32')],
  ];
  for (const [name, v] of cases) {
    it(`is byte for byte writeNifti's file: ${name}`, async () => {
      for (const gzip of [true, false]) {
        const p = join(dir, `w-${gzip}.nii${gzip ? '.gz' : ''}`);
        await writeNiftiFile(p, v, { gzip, description: 'gatedvision test' });
        const want = writeNifti(v, { gzip, description: 'gatedvision test' });
        const got = readFileSync(p);
        expect(got.length).toBe(want.length);
        expect(got.equals(Buffer.from(want))).toBe(true);
      }
    });
  }

  it('replaces an existing file and leaves no temporary behind; a bad volume is refused before any write', async () => {
    const p = join(dir, 'again.nii.gz');
    writeFileSync(p, 'old');
    await writeNiftiFile(p, cases[1]![1], { gzip: true });
    expect(readFileSync(p).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    await expect(writeNiftiFile(p, { ...cases[1]![1], shape: [3, 3, 3] }, { gzip: true })).rejects.toMatchObject({ code: 'shape' });
    expect(readFileSync(p).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('slices uploaded in pieces', () => {
  it('equal the whole range, for pieces that do and do not divide it', async () => {
    const [nx, ny, nz] = [7, 5, 23];
    const data = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i * 613) % 3001) - 1500);
    for (const [z0, z1, chunk] of [[0, 23, 35], [3, 20, 70], [2, 9, 1], [0, 23, 10_000]] as const) {
      const t = uploadSlices(data, z0, z1, nx * ny, ny, nx, chunk);
      expect(t.shape).toEqual([z1 - z0, ny, nx]);
      expect(Array.from(await t.data())).toEqual(Array.from(data.subarray(z0 * nx * ny, z1 * nx * ny)));
      t.dispose();
    }
  });
});

describe('labels written over the input', () => {
  for (const K of [2, 5]) {
    it(`equal labels in a fresh array (${K} classes)`, async () => {
      const m = model(K, 0);
      const [nx, ny, nz] = [45, 38, 5];
      const src16 = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i * 7919) % 1201) - 200 + (i % nx) * 9);
      const src8 = Uint8Array.from(src16, (v) => (v + 200) >> 3);
      // uint8 with one slice per group is the tight case: each group's labels end where the next read begins
      for (const [src, batch] of [[src8, 1], [src16, 2]] as const) {
        const norm = normalizerFor(src, 1, 0, { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 }, true);
        for (const packLabels of [false, true]) {
          const opts = { batch, packLabels };
          const plain = await predictLabels(m, src.slice(), [nx, ny, nz], [1, 1.2, 2], opts, undefined, norm);
          const input = src.slice();
          const over = await predictLabels(m, input, [nx, ny, nz], [1, 1.2, 2], { ...opts, reuseData: true }, undefined, norm);
          // the path was taken: the labels are the input's own memory
          expect(over.buffer).toBe(input.buffer);
          expect(Buffer.from(over.buffer, over.byteOffset, over.byteLength).equals(Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength))).toBe(true);
          expect(new Set(plain).size).toBeGreaterThan(1);
        }
      }
      m.dispose();
    });
  }

  it('groups that reuse one upload array give each slice the labels it gets alone', async () => {
    const m = model(2, 3);
    const [nx, ny, nz] = [40, 33, 5];
    const data = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i * 7919) % 1201) - 200 + ((i / (nx * ny)) | 0) * 97);
    const norm = normalizerFor(data, 1, 0, { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 }, true);
    const all = await predictLabels(m, data, [nx, ny, nz], [1, 1, 1], { batch: 2 }, undefined, norm);
    const plane = nx * ny;
    for (let z = 0; z < nz; z++) {
      const alone = await predictLabels(m, data, [nx, ny, nz], [1, 1, 1], { batch: 2 }, [z], norm);
      expect(Buffer.from(all.subarray(z * plane, (z + 1) * plane)).equals(Buffer.from(alone.subarray(z * plane, (z + 1) * plane)))).toBe(true);
    }
    expect(new Set(all).size).toBeGreaterThan(1);
    m.dispose();
  });

  it('is not taken over shared memory', async () => {
    const m = model(2, 4);
    const data = new Int16Array(new SharedArrayBuffer(32 * 32 * 3 * 2));
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 500;
    const before = data.slice();
    const out = await predictLabels(m, data, [32, 32, 3], [1, 1, 1], { reuseData: true });
    expect(out.buffer).not.toBe(data.buffer);
    expect(Buffer.from(data.buffer).equals(Buffer.from(before.buffer))).toBe(true);
    m.dispose();
  });

  it('is not taken for a subset of slices (the others must stay 0)', async () => {
    const m = model(2, 1);
    const data = Int16Array.from({ length: 32 * 32 * 4 }, (_, i) => (i * 37) % 500);
    const out = await predictLabels(m, data, [32, 32, 4], [1, 1, 1], { reuseData: true }, [1, 2]);
    expect(out.buffer).not.toBe(data.buffer);
    expect(out.subarray(0, 32 * 32).every((v) => v === 0)).toBe(true);
    m.dispose();
  });
});

describe('a batch without previews', () => {
  it('writes the same label file as one with previews, and records resident memory', async () => {
    const m = model(2, 2);
    const modelDir = join(dir, 'model');
    await saveTaskModel(modelDir, m);
    const [nx, ny, nz] = [48, 40, 9];
    const data = Int16Array.from({ length: nx * ny * nz }, (_, i) => {
      const x = i % nx;
      const y = ((i / nx) | 0) % ny;
      return ((x - 24) ** 2 + (y - 20) ** 2 < 220 ? 900 : 100) + ((i * 7919) % 97);
    });
    const input = join(dir, 'case.nii');
    writeFileSync(input, writeNifti(vol(data, [nx, ny, nz], 'int16')));
    const a = await segmentBatch([input], m, { outDir: join(dir, 'with'), modelName: 'mem', device: 'cpu', report: true });
    const b = await segmentBatch([input], m, { outDir: join(dir, 'without'), modelName: 'mem', device: 'cpu', report: false });
    expect([a.done, b.done]).toEqual([1, 1]);
    const la = readFileSync(join(dir, 'with', 'case.seg.nii.gz'));
    const lb = readFileSync(join(dir, 'without', 'case.seg.nii.gz'));
    expect(lb.equals(la)).toBe(true);
    const mem = b.records[0]!.memory!;
    expect(mem.start).toBeGreaterThan(0);
    expect(mem.peak).toBeGreaterThanOrEqual(mem.start!);
    expect(mem.peak).toBeGreaterThanOrEqual(mem.loaded!);
    m.dispose();
  }, 60_000);
});
