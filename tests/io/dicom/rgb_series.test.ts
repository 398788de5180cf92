/**
 * Colour (RGB) series with repeated slice positions, written by pydicom from a real T1 volume
 * (tests/_oracles/dicom_rgb_series.py), read through the sandbox. They follow the grey rules: pixel-identical
 * copies are dropped with one `duplicate_slices` warning; different pixels with nothing to tell them apart are
 * `series_inconsistent`. Where grey repeats become a 4th axis, colour has none left (it holds the samples), so
 * each acquisition becomes a volume of its own, labelled `series_split` as partial grey repeats are. Voxels are
 * compared with the oracle's arrays exactly; the affine with the one the DICOM positions define.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { assembleSeries } from '../../../io/dicom/read_items.ts';
import { loadInput } from '../../../io/load.ts';
import type { Volume } from '../../../io/volume.ts';
import { PYTHON } from '../../_helpers/python.ts';
import { AXIAL, limits, multiFrame } from './series_fixtures.ts';

const ORACLE = join(import.meta.dirname, '..', '..', '_oracles', 'dicom_rgb_series.py');

function make(variant: string): { dir: string; info: { acquisitions: number[]; files: number; positions: number[][] } } {
  const dir = mkdtempSync(join(tmpdir(), `gv-rgb-${variant}-`));
  return { dir, info: JSON.parse(execFileSync(PYTHON, [ORACLE, dir, variant], { encoding: 'utf8' })) };
}

/** The volume's affine is the DICOM one: 4 mm columns and rows, 3 mm slices, first voxel at the first position (LPS → RAS). */
function expectGeometry(v: Volume, first: number[]): void {
  expect(v.shape).toEqual([45, 54, 8, 3]);
  expect(v.spacing).toEqual([4, 4, 3, 1]);
  expect(v.affine).toEqual([
    [-4, 0, 0, -first[0]!],
    [0, -4, 0, -first[1]!],
    [0, 0, 3, first[2]!],
    [0, 0, 0, 1],
  ]);
  expect(v.meta.components).toBe('rgb');
}

function expectVoxels(v: Volume, dir: string, acquisition: number): void {
  const want = new Uint8Array(readFileSync(join(dir, `expected_${acquisition}.u8`)));
  expect(v.data.length).toBe(want.length);
  let diff = 0;
  for (let i = 0; i < want.length; i++) if (v.data[i] !== want[i]) diff++;
  expect(diff).toBe(0);
}

describe('colour series with repeated positions', () => {
  it('identical re-sent slices are dropped with one warning, as for grey', async () => {
    const { dir, info } = make('dup');
    const res = await loadInput(join(dir, 'dicom'));
    expect(res.rejected).toEqual([]);
    expect(res.volumes).toHaveLength(1);
    const v = res.volumes[0]!;
    expectGeometry(v, info.positions[0]!);
    expectVoxels(v, dir, 1);
    expect(v.meta.warnings.find((w) => w.code === 'duplicate_slices')?.details).toEqual({ duplicates: 2, files: 2 });
    expect(res.series[0]!.files).toBe(info.files);
  });

  it('two complete acquisitions at the same positions become two labelled colour volumes', async () => {
    const { dir, info } = make('acq2');
    const res = await loadInput(join(dir, 'dicom'));
    expect(res.rejected).toEqual([]);
    expect(res.volumes).toHaveLength(2);
    res.volumes.forEach((v, i) => {
      expectGeometry(v, info.positions[0]!);
      expectVoxels(v, dir, info.acquisitions[i]!);
    });
    expect(res.series.map((s) => s.warnings.find((w) => w.code === 'series_split')!.details)).toEqual([
      { by: ['acquisition'], part: 1, parts: 2, acquisitionNumber: 1 },
      { by: ['acquisition'], part: 2, parts: 2, acquisitionNumber: 2 },
    ]);
    expect(res.series.map((s) => s.files)).toEqual([8, 8]);
  });

  it('a different colour slice at a taken position with nothing to tell it apart is series_inconsistent, as for grey', async () => {
    const { dir } = make('conflict');
    const err = await loadInput(join(dir, 'dicom')).then(
      () => undefined,
      (e: unknown) => e as { code: string },
    );
    expect(err?.code).toBe('series_inconsistent');
  });

  it('one colour multi-frame object whose frames repeat the positions splits by repeat', async () => {
    // frames 0,1,2 then 3,4,5 at z = 0, 2, 4: two passes over the same three positions, no temporal index
    const frames = [0, 1, 2, 0, 1, 2].map((z) => ({ position: [0, 0, 2 * z] as [number, number, number], orientation: AXIAL, pixelSpacing: [1, 1] as [number, number], rescale: { slope: 1, intercept: 0 } }));
    const res = await assembleSeries([multiFrame(frames, 2, 3, (f) => 10 * f, 3)], { limits });
    expect(res.rejected).toEqual([]);
    expect(res.volumes.map((v) => v.shape)).toEqual([
      [3, 2, 3, 3],
      [3, 2, 3, 3],
    ]);
    // red sample of voxel (0, 0, z) per volume: frames 0,1,2 and 3,4,5
    expect(res.volumes.map((v) => [0, 1, 2].map((z) => v.data[z * 6]))).toEqual([
      [0, 10, 20],
      [30, 40, 50],
    ]);
    expect(res.series.map((s) => s.warnings.find((w) => w.code === 'series_split')!.details)).toEqual([
      { by: ['frame'], part: 1, parts: 2, repeat: 1 },
      { by: ['frame'], part: 2, parts: 2, repeat: 2 },
    ]);
  });
});
