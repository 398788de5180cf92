/**
 * The run manifest's `memory.peak` is the CLI's own high-water mark. getrusage's maxRSS carries a forking
 * parent's resident size across exec, so a CLI started by a large process (a benchmark holding its inputs)
 * recorded that process's size as its own peak.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { writeNifti } from '../../io/nifti/write.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-peak-'));
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'gatedvision.mjs');
const MiB = 2 ** 20;

it.skipIf(process.platform !== 'linux')('records the CLI’s own peak, not the resident size of the process that started it', () => {
  const [nx, ny, nz] = [40, 36, 5];
  const data = Int16Array.from({ length: nx * ny * nz }, (_, i) => ((i % nx) - 20) ** 2 + (((i / nx) | 0) % ny) * 7);
  const input = join(dir, 'small.nii');
  writeFileSync(input, writeNifti({ data, shape: [nx, ny, nz], spacing: [1, 1, 2], affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]], dtype: 'int16', meta: { format: 'nifti', components: 'scalar', warnings: [] } }));
  // this process made large and resident, as a benchmark holding its volumes is
  const ballast = Buffer.alloc(640 * MiB, 1);
  const parentMiB = process.memoryUsage.rss() / MiB;
  const out = join(dir, 'out');
  const run = spawnSync(process.execPath, [BIN, 'segment', input, '-o', out, '--model', 'brain', '--device', 'wasm', '--json', '--no-report'], { encoding: 'utf8' });
  expect(ballast[ballast.length - 1]).toBe(1);
  expect(run.status, run.stderr).toBe(0);
  const mem = JSON.parse(readFileSync(join(out, 'manifest.jsonl'), 'utf8').trim().split('\n').pop()!).memory as Record<string, number>;
  expect(parentMiB).toBeGreaterThan(640);
  expect(mem.peak).toBeGreaterThanOrEqual(mem.start!);
  // a small volume's segmentation stays far below the parent's size (maxRSS would have given at least ~640)
  expect(mem.peak).toBeLessThan(parentMiB - 300);
}, 60_000);
