/** `gatedvision evaluate` and `restore` as users run them: JSON shapes, exit codes, one-line typed errors. */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { buildTaskModel, saveTaskModel } from '../../pipelines/task_model.ts';
import { restoreSpec } from '../../pipelines/train/restore_data.ts';
import { pythonJson } from '../_helpers/python.ts';
import { SKIMAGE_DATA } from '../_helpers/testdata.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'gatedvision.mjs');

async function gv(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { timeout: 120_000, maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

let dir = '';
beforeAll(async () => {
  await selectDevice('cpu');
  dir = mkdtempSync(join(tmpdir(), 'gv-evcli-'));
  pythonJson(readFileSync(join(import.meta.dirname, '../_oracles/restore_inputs.py'), 'utf8'), [join(dir, 'data')]);
  // an untrained residual model is the identity: restore must hand the input back bit for bit
  await saveTaskModel(join(dir, 'identity'), buildTaskModel(restoreSpec('restore_test', 'identity'), 1));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('restore + evaluate CLI', () => {
  it('restores a folder, reports PSNR against references, and evaluate agrees', async () => {
    const out = join(dir, 'out');
    const r = await gv('restore', join(dir, 'data', 'noisy', 'cam.png'), join(dir, 'data', 'noisy', 'cam16.png'), '-o', out, '--model', join(dir, 'identity'), '--ref', join(dir, 'data', 'clean'), '--device', 'cpu', '--json');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as { done: number; records: Array<{ input: string; metrics?: { psnr: number; inputPsnr: number } }> };
    expect(s.done).toBe(2);
    const cam = s.records.find((x) => x.input.endsWith('cam.png'))!;
    expect(cam.metrics!.psnr).toBe(cam.metrics!.inputPsnr); // identity model: output == input
    const e = await gv('evaluate', '--pred', out, '--ref', join(dir, 'data', 'clean'), '--json');
    expect(e.code).toBe(0);
    const ev = JSON.parse(e.stdout) as { cases: Array<{ name: string; psnr: number }>; missingRef: string[] };
    expect(ev.cases.find((c) => c.name === 'cam')!.psnr).toBeCloseTo(cam.metrics!.psnr, 10);
    expect(ev.missingRef).toEqual(['cam16.png']);
  }, 180_000);

  it('exits 2 with a typed one-line error on a geometry mismatch and on bad options', async () => {
    // the full 512x512 camera as the reference of a 96x64 crop
    mkdirSync(join(dir, 'bigref'));
    copyFileSync(join(SKIMAGE_DATA, 'camera.png'), join(dir, 'bigref', 'cam.png'));
    const e = await gv('evaluate', '--pred', join(dir, 'data', 'noisy'), '--ref', join(dir, 'bigref'));
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/^error geometry_mismatch: cam: prediction is 96x64, reference 512x512/m);
    const bad = await gv('restore', join(dir, 'data', 'noisy', 'cam.png'), '-o', join(dir, 'x'), '--model', join(dir, 'identity'), '--overlap', '8');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error usage: --overlap needs --tile/m);
    const lp = await gv('restore', join(dir, 'data', 'noisy', 'cam.png'), '-o', join(dir, 'x'), '--model', join(dir, 'identity'), '--local-pooling', '--device', 'cpu');
    expect(lp.code).toBe(2);
    expect(lp.stderr).toMatch(/error config: --local-pooling applies to MAXIM models/);
  }, 180_000);
});
