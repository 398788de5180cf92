/** `gatedvision models [--json]`: every backbone variant with its parameter count and input constraints. */
import { defineCommand } from 'citty';
import { checkpointFormat, countParams, getVariant, listBackbones, resolveConfig } from '../backbones/_registry.ts';

export interface ModelJson {
  name: string;
  family: string;
  description: string;
  params: number;
  tiny: boolean;
  /** Format of the official checkpoints this family imports. */
  checkpoint: 'pth' | 'npz';
  input: { multipleOf: number; minSize: number; nativeSize: number; note: string };
  config: Record<string, unknown>;
}

export function listModels(): ModelJson[] {
  return listBackbones().map((name) => {
    const e = getVariant(name);
    return { name, family: e.family, description: e.description, params: countParams(name), tiny: e.tiny, checkpoint: checkpointFormat(name), input: e.input, config: resolveConfig(name) };
  });
}

export const modelsCommand = defineCommand({
  meta: { name: 'models', description: 'List the backbone variants with parameter counts and input constraints' },
  args: {
    json: { type: 'boolean', description: 'print JSON' },
  },
  run({ args }) {
    const models = listModels();
    if (args.json) {
      process.stdout.write(`${JSON.stringify(models)}\n`);
      return;
    }
    const w = Math.max(...models.map((m) => m.name.length));
    const lines = models.map((m) => `${m.name.padEnd(w)}  ${fmtParams(m.params).padStart(7)}  input ${m.input.note}${m.tiny ? '  [test]' : ''}  ${m.description}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  },
});

// --- internal ---

function fmtParams(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}K`;
}
