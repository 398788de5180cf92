/** evaluate against scipy/skimage on real data: an mricron atlas, skimage's horse mask and camera image. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { evaluateDirs, type EvaluateSummary, type RestoreCase, type SegmentCase } from '../../pipelines/evaluate.ts';
import { pythonJson } from '../_helpers/python.ts';
import { MRICRON, requireData, SKIMAGE_DATA } from '../_helpers/testdata.ts';

type SegOracle = { labels: number[]; metrics: Record<string, { dice: number; iou: number; hd95: number; surfaceDice: number }> };
interface Oracle {
  atlas: SegOracle;
  horse: SegOracle;
  camera: { psnr: number; ssim: number };
  camera16: { psnr: number; ssim: number };
}

let dir = '';
let oracle: Oracle;
let summary: EvaluateSummary;

beforeAll(async () => {
  requireData(MRICRON);
  requireData(SKIMAGE_DATA);
  dir = mkdtempSync(join(tmpdir(), 'gv-eval-'));
  const script = readFileSync(join(import.meta.dirname, '../_oracles/evaluate_cases.py'), 'utf8');
  oracle = pythonJson<Oracle>(script, [dir]);
  // the atlas holds 48 labels; four are enough to compare and keep this fast
  summary = await evaluateDirs(join(dir, 'pred'), join(dir, 'ref'), { labels: [3, 5, 7, 11, 255] });
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function segCase(name: string): SegmentCase {
  const c = summary.cases.find((x) => x.name === name);
  if (!c || c.task !== 'segment') throw new Error(`${name} was not scored as a label map`);
  return c;
}

describe('evaluate', () => {
  it('pairs files by name and picks the task from the reference', () => {
    expect(summary.cases.map((c) => `${c.name}:${c.task}`)).toEqual(['atlas:segment', 'camera:restore', 'camera16:restore', 'horse:segment']);
    expect(summary.missingPred).toEqual([]);
    // a requested label absent from both maps of a case is not scored there
    expect(segCase('horse').labels.map((l) => l.label)).toEqual([255]);
    expect(segCase('atlas').labels.map((l) => l.label)).toEqual([3, 5, 7, 11]);
  });

  it.each(['atlas', 'horse'] as const)('%s: Dice, IoU, HD95 and surface Dice equal scipy', (name) => {
    const c = segCase(name);
    const o = oracle[name];
    for (const lab of o.labels) {
      const m = c.labels.find((l) => l.label === lab)!;
      const e = o.metrics[String(lab)]!;
      expect(m.dice).toBeCloseTo(e.dice, 10);
      expect(m.iou).toBeCloseTo(e.iou, 10);
      expect(m.hd95).toBeCloseTo(e.hd95, 6);
      expect(m.surfaceDice).toBeCloseTo(e.surfaceDice, 10);
    }
    // the shifted prediction is imperfect: a metric that always said 1 would fail here
    expect(c.labels.find((l) => l.label === o.labels[0])!.dice).toBeLessThan(0.99);
  });

  it.each(['camera', 'camera16'] as const)('%s: PSNR and SSIM equal skimage', (name) => {
    const c = summary.cases.find((x) => x.name === name) as RestoreCase;
    expect(c.psnr).toBeCloseTo(oracle[name].psnr, 6);
    expect(c.ssim).toBeCloseTo(oracle[name].ssim, 6);
    expect(c.dataRange).toBe(name === 'camera' ? 255 : 65535);
  });

  it('refuses a prediction on another grid with a typed error', async () => {
    const err = await evaluateDirs(join(dir, 'geom/pred'), join(dir, 'geom/ref')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatedError);
    expect((err as GatedError).code).toBe('geometry_mismatch');
  });

  it('names references that have no prediction', async () => {
    const s = await evaluateDirs(join(dir, 'geom/ref'), join(dir, 'ref'), { labels: [3] });
    expect(s.cases.map((c) => c.name)).toEqual(['atlas']);
    expect(s.missingPred).toEqual(['camera.png', 'camera16.png', 'horse.png']);
  });
});
