/**
 * `segment` reading an uncompressed NIfTI slice by slice: the same label file, previews and volumes as reading it
 * whole (percentile z-score and CT-window models, several statistics slabs); the path is taken only for a .nii
 * whose voxels are already on the model's grid and whose statistics stream (not a .nii.gz, a reoriented file or
 * float voxels under a percentile z-score), as the run manifest says; damaged files keep their typed errors. The
 * pieces: file reads equal the array's, statistics over slabs equal the whole array's, stacks built from a source
 * equal stacks built from the array.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../core/limits.ts';
import { readNifti } from '../../io/nifti/read.ts';
import { writeNifti } from '../../io/nifti/write.ts';
import type { Volume } from '../../io/volume.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { normalizerFor, sourceNormalizer, type Normalization } from '../../pipelines/preprocess.ts';
import { segmentBatch } from '../../pipelines/segment.ts';
import { arraySource, fileSource, openNiftiSlices } from '../../pipelines/slice_source.ts';
import { backgroundLevel, writeSliceStack } from '../../pipelines/slices.ts';
import { buildTaskModel, type TaskModel } from '../../pipelines/task_model.ts';
import { specFromPreset } from '../../pipelines/train/presets.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-segstream-'));
/** Voxel axes along R, A, S: the model's grid as stored. */
const RAS = [[0.9, 0, 0, -20], [0, 1.1, 0, 5], [0, 0, 2, 1], [0, 0, 0, 1]];
/** x runs to the left: reorientation flips it. */
const LAS = [[-0.9, 0, 0, 20], [0, 1.1, 0, 5], [0, 0, 2, 1], [0, 0, 0, 1]];
const ZSCORE: Normalization = { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5 };

function vol(data: Volume['data'], shape: number[], dtype: Volume['dtype'], affine = RAS, rescale?: { slope: number; intercept: number }): Volume {
  return { data, shape, spacing: [0.9, 1.1, 2], affine, dtype, meta: { format: 'nifti', components: 'scalar', warnings: [], ...(rescale ? { rescale } : {}) } };
}

function model(norm: Normalization, seed: number): TaskModel {
  const spec = specFromPreset('seg_test', 'segment', 'stream', ['background', 'blob']);
  const m = buildTaskModel({ ...spec, input: { ...spec.input, normalization: norm, spacing: [1.5, 1.5] }, postprocess: { largestComponent: true, fillHoles: true } }, seed);
  // larger random weights, so that both classes win somewhere
  for (const v of m.variables()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', seed)));
  return m;
}

/** A bright disc over a darker, noisy background; int16, with a stored range that needs the histogram's trim. */
function blob(nx: number, ny: number, nz: number): Int16Array {
  return Int16Array.from({ length: nx * ny * nz }, (_, i) => {
    const x = i % nx;
    const y = ((i / nx) | 0) % ny;
    const z = (i / (nx * ny)) | 0;
    return ((x - nx / 2) ** 2 + (y - ny / 2) ** 2 < (nx * ny) / 9 + z * 9 ? 900 : 100) + ((i * 7919) % 97) - 300;
  });
}

function files(d: string): string[] {
  return readdirSync(d, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && !e.name.endsWith('.jsonl') && !e.name.endsWith('.html')).map((e) => join(e.parentPath, e.name).slice(d.length + 1)).sort();
}

beforeAll(async () => {
  await selectDevice('cpu');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('segment reading a .nii slice by slice', () => {
  const cases: [string, Normalization, Volume][] = [
    ['percentile z-score, int16 with a rescale', ZSCORE, vol(blob(48, 40, 9), [48, 40, 9], 'int16', RAS, { slope: 0.5, intercept: 7 })],
    ['CT window (the background level read from the file)', { kind: 'window', lo: -100, hi: 500 }, vol(blob(45, 38, 7), [45, 38, 7], 'int16')],
  ];
  for (const [i, [name, norm, v]] of cases.entries()) {
    it(`writes the same files as reading it whole: ${name}`, async () => {
      const m = model(norm, 11 + i);
      const input = join(dir, `case${i}.nii`);
      writeFileSync(input, writeNifti(v));
      for (const report of [true, false]) {
        const out = (mode: string) => join(dir, `out${i}-${mode}-${report}`);
        const whole = await segmentBatch([input], m, { outDir: out('whole'), modelName: 'stream', device: 'cpu', report, streamInput: false });
        const streamed = await segmentBatch([input], m, { outDir: out('streamed'), modelName: 'stream', device: 'cpu', report });
        expect([whole.done, streamed.done]).toEqual([1, 1]);
        expect(whole.records[0]!.inputRead).toBe('whole');
        expect(streamed.records[0]!.inputRead).toBe('streamed');
        // the label file, and with a report the previews, byte for byte
        const names = files(out('streamed'));
        expect(names).toEqual(files(out('whole')));
        expect(names.filter((f) => f.startsWith('previews/')).length).toBe(report ? names.length - 1 : 0);
        for (const f of names) expect(Buffer.compare(readFileSync(join(out('streamed'), f)), readFileSync(join(out('whole'), f))), f).toBe(0);
        expect(streamed.records[0]!.timings!['segment.prepare']).toBeGreaterThanOrEqual(0);
        const line = JSON.parse(readFileSync(join(out('streamed'), 'manifest.jsonl'), 'utf8').trim().split('\n').pop()!);
        expect(line.inputRead).toBe('streamed');
        expect(line.memory.peak).toBeGreaterThan(0);
        if (report) expect(readFileSync(join(out('streamed'), 'report.html'), 'utf8')).toContain('case' + i);
        // both classes are there: the comparison is of real masks, not of two empty ones
        const labels = readNifti(readFileSync(join(out('streamed'), `case${i}.seg.nii.gz`)), { limits: DEFAULT_LIMITS }, 'labels');
        expect(labels.shape).toEqual(v.shape);
        expect(new Set(labels.data).size).toBe(2);
      }
      m.dispose();
    }, 120_000);
  }

  it('is taken for an uncompressed .nii on the model grid only', async () => {
    const m = model(ZSCORE, 9);
    const data = blob(32, 32, 3);
    const inputs: [string, Uint8Array, 'streamed' | 'whole'][] = [
      ['plain.nii', writeNifti(vol(data, [32, 32, 3], 'int16')), 'streamed'],
      ['packed.nii.gz', writeNifti(vol(data, [32, 32, 3], 'int16'), { gzip: true }), 'whole'],
      ['flipped.nii', writeNifti(vol(data, [32, 32, 3], 'int16', LAS)), 'whole'],
      ['float.nii', writeNifti(vol(Float32Array.from(data), [32, 32, 3], 'float32')), 'whole'],
    ];
    for (const [name, bytes, how] of inputs) {
      const input = join(dir, name);
      writeFileSync(input, bytes);
      const res = await segmentBatch([input], m, { outDir: join(dir, `which-${name}`), modelName: 'stream', device: 'cpu', report: false });
      expect(res.done, name).toBe(1);
      expect(res.records[0]!.inputRead, name).toBe(how);
    }
    m.dispose();
  }, 120_000);

  it('rejects a truncated or damaged .nii with the codes of the whole read, before any inference', async () => {
    const m = model(ZSCORE, 3);
    const good = writeNifti(vol(blob(32, 32, 4), [32, 32, 4], 'int16'));
    const short = join(dir, 'short.nii');
    writeFileSync(short, good.subarray(0, good.length - 100));
    const badDims = Uint8Array.from(good);
    new DataView(badDims.buffer).setInt16(42, -5, true); // dim[1]
    const bad = join(dir, 'baddims.nii');
    writeFileSync(bad, badDims);
    for (const [input, code] of [[short, 'truncated'], [bad, 'bad_dims']] as const) {
      let slices = 0;
      const res = await segmentBatch([input], m, { outDir: join(dir, 'rejected'), modelName: 'stream', device: 'cpu', report: false, onSlices: () => slices++ });
      expect(res.rejected, input).toBe(1);
      expect(res.records[0]!.code).toBe(code);
      expect(slices).toBe(0);
      expect(openNiftiSlices(input, DEFAULT_LIMITS, 'x')).toBeUndefined();
    }
    m.dispose();
  }, 60_000);
});

describe('slices from a file', () => {
  const [nx, ny, nz] = [256, 256, 40];
  // 5 MiB of int16: statistics and background take two slabs
  const data = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i * 7919) % 4001) - 1500 + (((i / (nx * ny)) | 0) % 3) * 211);
  const path = join(dir, 'slabs.nii');

  beforeAll(() => writeFileSync(path, writeNifti(vol(data, [nx, ny, nz], 'int16'))));

  it('read as the array holds them, into a reused buffer or the caller\'s, and refuse ranges outside the volume', () => {
    const s = openNiftiSlices(path, DEFAULT_LIMITS, 'slabs.nii')!;
    try {
      expect(s.header.shape).toEqual([nx, ny, nz]);
      expect(s.header.dtype).toBe('int16');
      const mem = arraySource(data, [nx, ny, nz]);
      for (const [z0, z1] of [[0, 1], [3, 17], [39, 40], [0, 40]] as const) expect(Buffer.compare(Buffer.from(s.source.read(z0, z1).buffer, 0, (z1 - z0) * nx * ny * 2), Buffer.from(mem.read(z0, z1).slice().buffer))).toBe(0);
      const into = new Int16Array(2 * nx * ny);
      const got = s.source.read(5, 7, into);
      expect(got.buffer).toBe(into.buffer);
      expect(Array.from(got.subarray(0, 9))).toEqual(Array.from(data.subarray(5 * nx * ny, 5 * nx * ny + 9)));
      expect(() => s.source.read(39, 41)).toThrow(/asked of a volume of 40/);
      expect(() => s.source.read(2, 1)).toThrow();
    } finally {
      s.source.close();
    }
  });

  it('give the normaliser and background level of the whole array, over several slabs', () => {
    const src = fileSource(path, 352, [nx, ny, nz], 'int16');
    try {
      for (const norm of [ZSCORE, { ...ZSCORE, nonzeroOnly: true }, { kind: 'window', lo: -200, hi: 800 }, { kind: 'none' }] as Normalization[]) {
        for (const [slope, inter] of [[1, 0], [0.25, -3]] as const) {
          const want = normalizerFor(data, slope, inter, norm, true);
          const got = sourceNormalizer(src, slope, inter, norm);
          expect(got).toEqual(want);
          expect(backgroundLevel(src, got)).toBe(backgroundLevel(data, want));
        }
      }
      expect(() => sourceNormalizer(fileSource(path, 352, [nx, ny, nz / 2], 'float32'), 1, 0, ZSCORE)).toThrow(/need the whole volume/);
    } finally {
      src.close();
    }
  });

  it('fail as truncated when the file shrinks after it was opened', () => {
    const copy = join(dir, 'shrinks.nii');
    writeFileSync(copy, readFileSync(path));
    const s = openNiftiSlices(copy, DEFAULT_LIMITS, 'shrinks.nii')!;
    try {
      truncateSync(copy, 352 + 10 * nx * ny * 2);
      expect(s.source.read(0, 10).length).toBe(10 * nx * ny);
      expect(() => s.source.read(9, 11)).toThrow(expect.objectContaining({ code: 'truncated' }));
    } finally {
      s.source.close();
    }
  });

  it('build the same 2.5D stacks as the array', () => {
    const src = fileSource(path, 352, [nx, ny, nz], 'int16');
    try {
      const g = { nx, ny, nz, H: 288, W: 260 };
      const norm = normalizerFor(data, 1, 0, ZSCORE, true);
      for (const z of [0, 1, 20, 39]) {
        const a = new Float32Array(g.H * g.W * 5);
        const b = new Float32Array(g.H * g.W * 5);
        writeSliceStack(data, g, z, 2, -1, a, 0, norm);
        writeSliceStack(src, g, z, 2, -1, b, 0, norm);
        expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).toBe(0);
      }
    } finally {
      src.close();
    }
  });
});
