/**
 * DICOM SEG writer against oracles no one here wrote: a tiny oblique series built and read back by
 * pydicom is the source; dciodvfy (dicom3tools) and dcmdump (dcmtk) judge the encoding; pydicom reads the
 * SEG and maps every frame's pixels to patient millimetres, which must match our label map through the
 * source affine. Does not use our DICOM reader.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { GatedError, type ErrorCode } from '../../../core/errors.ts';
import { applyAffine, matmul4, rasToLps, type Mat4 } from '../../../io/geometry.ts';
import { writeDicomSeg, type SegmentDef, type SegSource } from '../../../io/seg/write.ts';
import type { Volume } from '../../../io/volume.ts';
import { PYTHON, pythonJson } from '../../_helpers/python.ts';

interface SourceInfo extends SegSource {
  ipp: number[][];
}
interface SegFrame {
  seg: number;
  ref: string;
  refClass: string;
  purpose: string;
  ipp: number[];
  dim: number[];
  pixels: number[];
}
interface SegRead {
  transferSyntax: string;
  sopClassUID: string;
  sopInstanceUID: string;
  metaSopInstanceUID: string;
  studyInstanceUID: string;
  seriesInstanceUID: string;
  frameOfReferenceUID: string;
  segmentationType: string;
  bitsAllocated: number;
  rows: number;
  columns: number;
  numberOfFrames: number;
  pixelDataBytes: number;
  pixelSha: string;
  patient: Record<string, string>;
  iop: number[];
  pixelSpacing: number[];
  segments: { number: number; label: string; category: string[]; type: string[]; algorithmType: string; algorithmName: string; lab: number[] | null }[];
  referencedSeries: [string, string[]][];
  dimensions: [string, string][];
  frames: SegFrame[];
  centroids: Record<string, number[]>;
  counts: Record<string, number>;
}

const ORACLES = join(import.meta.dirname, '..', '..', '_oracles');
const dir = mkdtempSync(join(tmpdir(), 'gv-seg-'));

// Segment 1 is label 7 and segment 2 is label 3, so a writer that confuses segment numbers with label values fails.
const SEGMENTS: SegmentDef[] = [
  { label: 7, name: 'Lesion', color: [255, 0, 0], algorithmName: 'unet-test', type: { value: '52988006', scheme: 'SCT', meaning: 'Lesion' } },
  { label: 3, name: 'Organ' },
];

let source: SourceInfo;
let labels: Volume;
let counter = 0;

beforeAll(() => {
  source = JSON.parse(execFileSync(PYTHON, [join(ORACLES, 'seg_source.py'), join(dir, 'src')], { encoding: 'utf8' })) as SourceInfo;
  const [nx, ny, nz] = source.shape as [number, number, number];
  const data = new Uint8Array(nx * ny * nz);
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    // asymmetric blob on slices 1-3; box on slices 0, 1 and 4 only (slices 2-3 have no frame for it)
    if (k >= 1 && k <= 3 && (i - 4) ** 2 + 1.7 * (j - 5) ** 2 + (k === 2 ? 0 : 2) < 9 + (i > 4 ? 3 : 0)) data[i + nx * (j + ny * k)] = 7;
    if ((k <= 1 || k === 4) && i >= 8 && i <= 11 && j >= 2 && j <= 4 + k) data[i + nx * (j + ny * k)] = 3;
  }
  labels = volumeOf(data, source.shape, source.affine);
}, 60_000);

function volumeOf(data: Uint8Array | Uint16Array, shape: number[], affine: Mat4): Volume {
  return { data, shape, spacing: [1, 1, 1], affine, dtype: data instanceof Uint8Array ? 'uint8' : 'uint16', meta: { format: 'dicom', components: 'scalar', warnings: [] } };
}

function save(bytes: Uint8Array): string {
  const file = join(dir, `seg${counter++}.dcm`);
  writeFileSync(file, bytes);
  return file;
}

function readBack(file: string): SegRead {
  return pythonJson<SegRead>(`import runpy, sys; sys.argv = ['seg_read.py', sys.argv[1]]; runpy.run_path(${JSON.stringify(join(ORACLES, 'seg_read.py'))})`, [file]);
}

function dciodvfy(file: string): { errors: string[]; warnings: string[]; report: string } {
  const r = spawnSync('dciodvfy', [file], { encoding: 'utf8' });
  const report = `${r.stdout}${r.stderr}`;
  const lines = report.split('\n');
  return { errors: lines.filter((l) => /^Error/i.test(l)), warnings: lines.filter((l) => /^Warning/i.test(l)), report };
}

/** Voxel (i, j, k) of `v` moved to new axes: new axis n is old axis perm[n], reversed where flip[n]. */
function reorient(v: Volume, perm: [number, number, number], flip: [boolean, boolean, boolean]): Volume {
  const old = v.shape as [number, number, number];
  const dims = perm.map((p) => old[p]!) as [number, number, number];
  const m: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  perm.forEach((p, n) => {
    m[p]![n] = flip[n] ? -1 : 1;
    if (flip[n]) m[p]![3] = old[p]! - 1;
  });
  const out = new Uint8Array(v.data.length);
  const u = [0, 0, 0];
  for (u[2] = 0; u[2] < dims[2]; u[2]++) for (u[1] = 0; u[1] < dims[1]; u[1]++) for (u[0] = 0; u[0] < dims[0]; u[0]++) {
    const o = applyAffine(m, u);
    out[u[0] + dims[0] * (u[1] + dims[1] * u[2])] = v.data[o[0] + old[0] * (o[1] + old[1] * o[2])] as number;
  }
  return volumeOf(out, dims, matmul4(v.affine, m));
}

function expectCode(fn: () => unknown, code: ErrorCode): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(GatedError);
  expect((thrown as GatedError).code).toBe(code);
}

describe('writeDicomSeg', () => {
  it('writes a SEG that dciodvfy and dcmdump accept, with the source identity and patient carried over', () => {
    const file = save(writeDicomSeg(labels, source, SEGMENTS, { seriesDescription: 'AI seg', contentCreator: 'Bot^Seg' }));
    const v = dciodvfy(file);
    expect(v.report).toMatch(/Segmentation/); // dciodvfy recognised the IOD it validated
    expect(v.errors, v.report).toEqual([]);
    expect(v.warnings, v.report).toEqual([]); // dciodvfy has nothing to warn about either
    const dump = spawnSync('dcmdump', ['-q', file], { encoding: 'utf8' });
    expect(dump.status, dump.stderr).toBe(0);
    expect(dump.stderr).toBe('');

    const back = readBack(file);
    expect(back.transferSyntax).toBe('1.2.840.10008.1.2.1');
    expect(back.sopClassUID).toBe('1.2.840.10008.5.1.4.1.1.66.4');
    expect(back.sopInstanceUID).toBe(back.metaSopInstanceUID);
    expect(back.sopInstanceUID).toMatch(/^2\.25\.[1-9][0-9]*$/);
    expect(back.seriesInstanceUID).toMatch(/^2\.25\.[1-9][0-9]*$/);
    expect(back.seriesInstanceUID).not.toBe(source.seriesInstanceUID);
    expect(back.studyInstanceUID).toBe(source.studyInstanceUID);
    expect(back.frameOfReferenceUID).toBe(source.frameOfReferenceUID);
    expect([back.segmentationType, back.bitsAllocated, back.rows, back.columns]).toEqual(['BINARY', 1, source.shape[1], source.shape[0]]);
    expect(back.patient).toEqual(source.patient); // includes the UTF-8 name 'Müller^Jörg'
    expect(back.referencedSeries).toEqual([[source.seriesInstanceUID, source.sopInstanceUIDs]]);
    expect(back.dimensions).toEqual([['0062000B', '0062000A'], ['00200032', '00209113']]);
    expect(back.segments.map((s) => [s.number, s.label, s.algorithmType, s.algorithmName, s.category, s.type])).toEqual([
      [1, 'Lesion', 'AUTOMATIC', 'unet-test', ['85756007', 'SCT', 'Tissue'], ['52988006', 'SCT', 'Lesion']],
      [2, 'Organ', 'AUTOMATIC', 'gatedvision', ['85756007', 'SCT', 'Tissue'], ['85756007', 'SCT', 'Tissue']],
    ]);
  });

  it('puts every segment where the label map says, frame by frame, in patient millimetres (pydicom read-back)', () => {
    const back = readBack(save(writeDicomSeg(labels, source, SEGMENTS)));
    const [nx, ny, nz] = source.shape as [number, number, number];
    const lps = rasToLps(source.affine);
    // Expected frames straight from our label map: one per (segment, slice) holding it, nothing else.
    const expected: { seg: number; k: number; pixels: number[] }[] = [];
    SEGMENTS.forEach((s, si) => {
      for (let k = 0; k < nz; k++) {
        const pixels: number[] = [];
        for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) if (labels.data[i + nx * (j + ny * k)] === s.label) pixels.push(j * nx + i);
        if (pixels.length) expected.push({ seg: si + 1, k, pixels });
      }
    });
    expect(expected.length).toBe(6); // 3 blob slices + 3 box slices: empty ones omitted
    expect(back.numberOfFrames).toBe(expected.length);
    // 143 bits per frame: packed continuously, not padded per frame
    expect(back.pixelDataBytes).toBe(Math.ceil((expected.length * nx * ny) / 8) + (Math.ceil((expected.length * nx * ny) / 8) % 2));
    expected.forEach((e, f) => {
      const got = back.frames[f]!;
      expect(got.seg).toBe(e.seg);
      expect(got.ref).toBe(source.sopInstanceUIDs[e.k]);
      expect(got.refClass).toBe(source.sopClassUID);
      expect(got.purpose).toBe('121322');
      expect(got.dim).toEqual([e.seg, e.k + 1]);
      for (let d = 0; d < 3; d++) expect(Math.abs(got.ipp[d]! - source.ipp[e.k]![d]!)).toBeLessThan(1e-3);
      expect(got.pixels).toEqual(e.pixels);
    });
    SEGMENTS.forEach((s, si) => {
      const sum = [0, 0, 0];
      let n = 0;
      for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
        if (labels.data[i + nx * (j + ny * k)] !== s.label) continue;
        const w = applyAffine(lps, [i, j, k]);
        for (let d = 0; d < 3; d++) sum[d]! += w[d]!;
        n++;
      }
      expect(back.counts[String(si + 1)]).toBe(n);
      const c = back.centroids[String(si + 1)]!;
      for (let d = 0; d < 3; d++) expect(Math.abs(c[d]! - sum[d]! / n)).toBeLessThan(1e-3);
    });
  });

  it('gives the same frames for a label map in a flipped or permuted orientation', () => {
    const ref = readBack(save(writeDicomSeg(labels, source, SEGMENTS)));
    for (const [perm, flip] of [
      [[0, 1, 2], [true, true, false]], // LPS-like source seen in RAS
      [[2, 0, 1], [true, false, true]],
    ] as [[number, number, number], [boolean, boolean, boolean]][]) {
      const moved = reorient(labels, perm, flip);
      expect(Buffer.from(moved.data).equals(Buffer.from(labels.data))).toBe(false);
      const back = readBack(save(writeDicomSeg(moved, source, SEGMENTS)));
      expect(back.pixelSha).toBe(ref.pixelSha);
      expect(back.frames).toEqual(ref.frames);
    }
  });

  it('writes a valid SEG with one empty frame when the mask is empty', () => {
    const empty = volumeOf(new Uint8Array(labels.data.length), source.shape, source.affine);
    const file = save(writeDicomSeg(empty, source, SEGMENTS));
    const v = dciodvfy(file);
    expect(v.errors, v.report).toEqual([]);
    const back = readBack(file);
    expect(back.numberOfFrames).toBe(1);
    expect(back.frames[0]!.pixels).toEqual([]);
    expect(back.frames[0]!.ref).toBe(source.sopInstanceUIDs[0]);
  });

  it('stores the display colour as the CIELab that skimage computes for it', () => {
    const back = readBack(save(writeDicomSeg(labels, source, SEGMENTS)));
    const lab = pythonJson<number[]>('import json, numpy as np, skimage.color as c; print(json.dumps(c.rgb2lab(np.array([[[1.0, 0, 0]]]))[0, 0].tolist()))');
    const got = back.segments[0]!.lab!;
    expect(Math.abs((got[0]! / 65535) * 100 - lab[0]!)).toBeLessThan(0.05);
    expect(Math.abs(got[1]! / 257 - 128 - lab[1]!)).toBeLessThan(0.05);
    expect(Math.abs(got[2]! / 257 - 128 - lab[2]!)).toBeLessThan(0.05);
    expect(back.segments[1]!.lab).toBeNull();
  });

  it('refuses mismatched grids, undefined labels, bad segments and non-integer maps with typed errors', () => {
    const [nx, ny, nz] = source.shape as [number, number, number];
    const a = source.affine;
    const shifted = (dx: number) => a.map((r, i) => (i < 3 ? [r[0]!, r[1]!, r[2]!, r[3]! + dx * r[0]!] : r));
    expectCode(() => writeDicomSeg(volumeOf(new Uint8Array((nx - 1) * ny * nz), [nx - 1, ny, nz], a), source, SEGMENTS), 'bad_geometry');
    expectCode(() => writeDicomSeg({ ...labels, affine: shifted(0.4) }, source, SEGMENTS), 'bad_geometry');
    expectCode(() => writeDicomSeg({ ...labels, affine: shifted(1) }, source, SEGMENTS), 'bad_geometry'); // whole-voxel shift
    expectCode(() => writeDicomSeg({ ...labels, affine: a.map((r, i) => (i < 3 ? [r[0]! * 1.01, r[1]!, r[2]!, r[3]!] : r)) }, source, SEGMENTS), 'bad_geometry');
    expectCode(() => writeDicomSeg(labels, { ...source, sopInstanceUIDs: source.sopInstanceUIDs.slice(1) }, SEGMENTS), 'bad_geometry');
    expectCode(() => writeDicomSeg(labels, source, [SEGMENTS[0]!]), 'config'); // label 3 has no segment
    expectCode(() => writeDicomSeg({ ...labels, dtype: 'float32', data: new Float32Array(labels.data.length) }, source, SEGMENTS), 'config');
    expectCode(() => writeDicomSeg(labels, source, [...SEGMENTS, { label: 7, name: 'again' }]), 'config');
    expectCode(() => writeDicomSeg(labels, source, [...SEGMENTS, { label: 0, name: 'background' }]), 'config');
    expectCode(() => writeDicomSeg(labels, source, []), 'config');
    expectCode(() => writeDicomSeg(labels, source, [{ ...SEGMENTS[0]!, category: { value: 'x'.repeat(17), scheme: 'SCT', meaning: 'm' } }, SEGMENTS[1]!]), 'config');
    expectCode(() => writeDicomSeg(labels, { ...source, studyInstanceUID: '1.02.3' }, SEGMENTS), 'config');
    expect(() => writeDicomSeg({ ...labels, data: Uint16Array.from(labels.data), dtype: 'uint16' }, source, SEGMENTS)).not.toThrow();
  });
});
