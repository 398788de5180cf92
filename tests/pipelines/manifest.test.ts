/** Run manifest: durable appends, torn last lines, resume decisions, and deterministic disjoint sharding. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunManifest, inputId, shard, type RunRecord } from '../../pipelines/manifest.ts';

const dir = mkdtempSync(join(tmpdir(), 'gv-manifest-'));
const rec = (id: string, status: RunRecord['status'], outputs: string[] = []): RunRecord => ({ id, input: `in/${id}`, status, outputs, ms: 1, at: '2026-11-28T00:00:00Z' });

describe('RunManifest', () => {
  it('last record wins; done needs its outputs on disk', async () => {
    const path = join(dir, 'a.jsonl');
    const out = join(dir, 'a.nii');
    writeFileSync(out, 'x');
    const m = await RunManifest.open(path);
    await m.append(rec('1', 'failed'));
    await m.append(rec('1', 'done', [out]));
    await m.append(rec('2', 'done', [join(dir, 'missing.nii')]));
    await m.append(rec('3', 'rejected'));
    const again = await RunManifest.open(path);
    expect(again.last('1')!.status).toBe('done');
    expect(again.isDone('1')).toBe(true);
    expect(again.isDone('2')).toBe(false); // its output vanished: it runs again
    expect(again.isDone('3')).toBe(false);
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(4);
  });

  it('with settings, done also needs the same settings (key order aside); older records without them never match', async () => {
    const path = join(dir, 's.jsonl');
    const out = join(dir, 's.nii');
    writeFileSync(out, 'x');
    const m = await RunManifest.open(path);
    await m.append({ ...rec('1', 'done', [out]), settings: { weights: 'ab', tta: false, tile: 0 } });
    await m.append(rec('2', 'done', [out]));
    const again = await RunManifest.open(path);
    expect(again.isDone('1', { tile: 0, tta: false, weights: 'ab' })).toBe(true);
    expect(again.isDone('1', { tile: 0, tta: true, weights: 'ab' })).toBe(false);
    expect(again.isDone('1', { tile: 0, tta: false, weights: 'cd' })).toBe(false);
    expect(again.isDone('1', { tile: 0, tta: false })).toBe(false);
    expect(again.isDone('1', { tile: 0, tta: false, weights: 'ab', extra: null })).toBe(false);
    expect(again.isDone('1')).toBe(true);
    expect(again.isDone('2', { tile: 0 })).toBe(false);
    expect(again.isDone('2')).toBe(true);
  });

  it('a line torn by a kill is ignored, and the next append starts on a fresh line', async () => {
    const path = join(dir, 'b.jsonl');
    const m = await RunManifest.open(path);
    await m.append(rec('1', 'done'));
    appendFileSync(path, '{"id":"2","input":"in/2","sta'); // the kill
    const again = await RunManifest.open(path);
    expect(again.tornLines).toBe(1);
    expect(again.last('2')).toBeUndefined();
    await again.append(rec('2', 'done'));
    const third = await RunManifest.open(path);
    expect(third.tornLines).toBe(1);
    expect(third.last('2')!.status).toBe('done');
  });

  it('SIGKILL while appending in a loop never leaves a record that parses wrongly', async () => {
    const path = join(dir, 'c.jsonl');
    const script = `
      import { RunManifest } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'pipelines', 'manifest.ts'))};
      const m = await RunManifest.open(${JSON.stringify(path)});
      for (let i = 0; ; i++) await m.append({ id: String(i), input: 'x'.repeat(5000), status: 'done', outputs: [], ms: i, at: 'now' });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'ignore', cwd: join(import.meta.dirname, '..', '..') });
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const m = await RunManifest.open(path);
    const ids = m.all().map((r) => Number(r.id)).sort((a, b) => a - b);
    expect(ids.length).toBeGreaterThan(0);
    expect(ids).toEqual(ids.map((_, i) => i)); // a gap-free prefix: nothing lost before the torn tail
    expect(m.tornLines).toBeLessThanOrEqual(1);
  }, 20_000);
});

describe('shard', () => {
  it('parts are disjoint, cover everything, and do not depend on input order', () => {
    const items = Array.from({ length: 500 }, (_, i) => `case-${i}.nii.gz`);
    const parts = [1, 2, 3, 4].map((i) => shard(items, `${i}/4`, (x) => x));
    expect(parts.flat().sort()).toEqual([...items].sort());
    expect(new Set(parts.flat()).size).toBe(items.length);
    for (const p of parts) expect(p.length).toBeGreaterThan(80);
    const shuffled = [...items].reverse();
    expect(shard(shuffled, '3/4', (x) => x).sort()).toEqual([...parts[2]!].sort());
  });
  it('rejects malformed parts as usage errors', () => {
    for (const p of ['0/4', '5/4', '1-4', '1/0']) expect(() => shard([1], p, String)).toThrow(/--part/);
  });
  it('inputId changes when the file changes', () => {
    expect(inputId('a', 1, 1000)).toBe(inputId('a', 1, 1000.4));
    expect(inputId('a', 1, 1000)).not.toBe(inputId('a', 2, 1000));
  });
});
