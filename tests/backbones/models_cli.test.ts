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

it('--json shows each variant\'s official drop-path rate (training only) in its config', async () => {
  const models = JSON.parse(await capture(['--json'])) as ModelJson[];
  const rate = (name: string) => models.find((m) => m.name === name)!.config.dropPath;
  const want = { vig_t: 0, vig_s: 0.2, vig_b: 0.5, vig_h_t: 0.2, vig_h_s: 0.3, vig_h_b: 0.6, her_seg: 0.1, deit_t: 0.1, deit_s: 0.1, test_vig: 0, test_vig_h: 0, test_her_seg: 0, test_deit: 0 };
  for (const [name, r] of Object.entries(want)) expect(rate(name)).toBe(r);
  // families whose official code has no stochastic depth do not offer it
  for (const m of models.filter((m) => m.family === 'maxim' || m.family === 'activator')) expect(m.config).not.toHaveProperty('dropPath');
  expect(models.find((m) => m.name === 'vig_h_t')!.config.outNorms).toBe(false);
});
