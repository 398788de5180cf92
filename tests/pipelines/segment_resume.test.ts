/**
 * Kill-and-resume: a `segment` process killed with SIGKILL at random moments, then rerun with --resume until it
 * finishes, ends with exactly the files of an uninterrupted run (byte for byte), every input recorded done once
 * finished, and no temporary files left behind. A resume with other settings (here --tta) redoes every input.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { shippedModelsDir } from '../../pipelines/task_model.ts';
import { runPython } from '../_helpers/python.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-resume-'));
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'gatedvision.mjs');
const inputs = [0, 1, 2, 3].map((i) => join(dir, 'in', `case${i}.nii.gz`));

beforeAll(() => {
  runPython(
    `import sys, os, numpy as np, nibabel as nib
img = nib.load(sys.argv[1]); d = np.asarray(img.dataobj); os.makedirs(sys.argv[2], exist_ok=True)
for i in range(4):
    z0 = 30 + 6 * i; a = img.affine.copy(); a[:3, 3] = img.affine[:3, :3] @ [0, 0, z0] + img.affine[:3, 3]
    nib.save(nib.Nifti1Image(d[:, :, z0:z0 + 5].astype(np.uint8), a), os.path.join(sys.argv[2], f'case{i}.nii.gz'))`,
    [join(shippedModelsDir(), 'samples', 'colin27_t1_2mm.nii.gz'), join(dir, 'in')],
  );
});

const args = (out: string, resume: boolean) => [BIN, 'segment', ...inputs, '-o', out, '--device', 'wasm', '--json', ...(resume ? ['--resume'] : [])];

function files(d: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(d, { recursive: true, withFileTypes: true })) if (f.isFile()) out.push(join(f.parentPath, f.name).slice(d.length + 1));
  return out.sort();
}

it('loses nothing and reruns byte-identically after SIGKILLs', async () => {
  const ref = join(dir, 'ref');
  expect(spawnSync(process.execPath, args(ref, false), { encoding: 'utf8' }).status).toBe(0);
  const refFiles = files(ref).filter((f) => f !== 'manifest.jsonl' && f !== 'report.html');
  expect(refFiles.filter((f) => f.endsWith('.seg.nii.gz')).length).toBe(4);

  const out = join(dir, 'killed');
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let kills = 0;
  for (let attempt = 0; attempt < 8; attempt++) {
    const child = spawn(process.execPath, args(out, true), { stdio: 'ignore' });
    const delay = 1500 + rand() * 4000;
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), delay);
      child.on('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    if (code === 0) break;
    kills++;
  }
  expect(kills).toBeGreaterThan(0); // at least one run really was killed mid-batch
  if (!existsSync(join(out, 'report.html'))) expect(spawnSync(process.execPath, args(out, true)).status).toBe(0);
  for (const f of refFiles) expect(readFileSync(join(out, f)).equals(readFileSync(join(ref, f))), f).toBe(true);
  expect(files(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  const last = new Map<string, string>();
  for (const line of readFileSync(join(out, 'manifest.jsonl'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line);
      last.set(r.input, r.status);
    } catch {
      // a line torn by a kill: that input ran again
    }
  }
  expect([...last.values()]).toEqual(['done', 'done', 'done', 'done']);
}, 300_000);

it('--resume skips inputs done with the same settings and redoes those made with others', () => {
  const out = join(dir, 'settings');
  const run = (extra: string[]) => {
    const r = spawnSync(process.execPath, [...args(out, true), ...extra], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { done: number; skipped: number };
  };
  expect(run([])).toMatchObject({ done: 4, skipped: 0 });
  expect(run([])).toMatchObject({ done: 0, skipped: 4 });
  expect(run(['--tta'])).toMatchObject({ done: 4, skipped: 0 });
  expect(run(['--tta'])).toMatchObject({ done: 0, skipped: 4 });
  const last = new Map<string, { settings?: { tta?: boolean; weights?: string } }>();
  for (const line of readFileSync(join(out, 'manifest.jsonl'), 'utf8').trim().split('\n')) last.set(JSON.parse(line).input, JSON.parse(line));
  expect([...last.values()].map((r) => r.settings?.tta)).toEqual([true, true, true, true]);
  expect([...last.values()].every((r) => /^[0-9a-f]{64}$/.test(r.settings?.weights ?? ''))).toBe(true);
}, 300_000);
