/**
 * `gatedvision convert <input> <output>`: NIfTI (.nii/.nii.gz) from any input, PNG from 2D inputs.
 * A folder output receives one file per series, named by position (never by identifiers from the file).
 */
import { defineCommand, runCommand } from 'citty';
import { stat } from 'node:fs/promises';
import { GatedError } from '../core/errors.ts';
import { sandboxModeFor } from '../io/sandbox_guard.ts';
import { convertInput, type ConvertTarget } from '../pipelines/convert.ts';

export const convertCommand = defineCommand({
  meta: { name: 'convert', description: 'Convert an input to NIfTI (.nii/.nii.gz) or PNG (2D)' },
  args: {
    input: { type: 'positional', required: true, description: 'file, folder or zip' },
    output: { type: 'positional', required: true, description: 'output file (.nii, .nii.gz, .png) or folder' },
    json: { type: 'boolean', description: 'print the written files as JSON' },
    resample: { type: 'boolean', description: 'resample irregular DICOM stacks onto a regular grid' },
  },
  async run({ args }) {
    const target = await resolveTarget(args.output);
    // The task goes to the decoding process first; the progress display (cli-progress) loads while it works.
    let progress: ReturnType<typeof import('./output.ts').progressReporter> | undefined;
    const running = convertInput(args.input, target, { onProgress: (d, t, w) => progress?.onProgress(d, t, w), resample: Boolean(args.resample), sandboxMode: sandboxModeFor(args.input, args.output) });
    running.catch(() => undefined); // awaited below; a failure before that is not an unhandled rejection
    let res;
    try {
      progress = (await import('./output.ts')).progressReporter('reading', Boolean(args.json));
      res = await running;
    } finally {
      progress?.stop();
    }
    if (args.json) process.stdout.write(`${JSON.stringify(res)}\n`);
    else {
      for (const w of res.warnings) process.stderr.write(`warning ${w.code}: ${w.message}\n`);
      for (const p of res.outputs) process.stdout.write(`wrote ${p}\n`);
    }
  },
});

async function resolveTarget(output: string): Promise<ConvertTarget> {
  const lower = output.toLowerCase();
  if (lower.endsWith('.nii.gz')) return { kind: 'file', path: output, format: 'nii.gz' };
  if (lower.endsWith('.nii')) return { kind: 'file', path: output, format: 'nii' };
  if (lower.endsWith('.png')) return { kind: 'file', path: output, format: 'png' };
  const isDir = await stat(output).then((s) => s.isDirectory(), () => false);
  if (isDir || output.endsWith('/')) return { kind: 'folder', path: output };
  throw new GatedError('usage', `cannot tell the output format of '${output}': use .nii, .nii.gz, .png or an existing folder`);
}

/**
 * `gatedvision convert ...` without the rest of the CLI (models, kernels, tfjs): what bin/gatedvision.mjs
 * runs for this command, so a conversion pays only for the code it uses. Same exit codes and error lines
 * as cli/main.ts.
 */
export async function convertMain(argv: string[]): Promise<number> {
  try {
    await runCommand(convertCommand, { rawArgs: argv });
    return 0;
  } catch (e) {
    // citty reports missing positionals as its own error class; those are usage errors
    const err = e instanceof Error && e.name === 'CLIError' ? new GatedError('usage', e.message) : e;
    const { reportError } = await import('./output.ts');
    return reportError(err, argv.includes('--json'));
  }
}
