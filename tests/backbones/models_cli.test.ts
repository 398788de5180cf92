/** `gatedvision models`: lists every registered variant with its parameter count and input constraint. */
import { runCommand } from 'citty';
import { expect, it, vi } from 'vitest';
import { listBackbones } from '../../backbones/_registry.ts';
import { modelsCommand, type ModelJson } from '../../cli/models.ts';

async function capture(rawArgs: string[]): Promise<string> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  try {
    await runCommand(modelsCommand, { rawArgs });
  } finally {
    spy.mockRestore();
  }
  return out;
}

it('--json lists every variant with params and input constraints', async () => {
  const models = JSON.parse(await capture(['--json'])) as ModelJson[];
  expect(models.map((m) => m.name)).toEqual(listBackbones());
  const vigT = models.find((m) => m.name === 'vig_t')!;
  expect(vigT.params).toBe(5_834_536);
  expect(vigT.input.nativeSize).toBe(224);
  expect(vigT.checkpoint).toBe('pth');
  expect(models.find((m) => m.name === 'maxim_s3')!.checkpoint).toBe('npz');
  expect(models.find((m) => m.name === 'maxim_s3')!.input.multipleOf).toBe(64);
  for (const m of models) {
    expect(m.params).toBeGreaterThan(0);
    expect(m.input.note.length).toBeGreaterThan(0);
  }
});

it('the table names each variant once with a human-readable count', async () => {
  const text = await capture([]);
  expect(text).toMatch(/^vig_t\s+5\.83M/m);
  expect(text.trim().split('\n').length).toBe(listBackbones().length);
});
