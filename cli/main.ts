/** The `gatedvision` command: parses arguments, calls io/pipelines, maps errors to exit codes once. */
import { defineCommand, runCommand, renderUsage } from 'citty';
import { GatedError } from '../core/errors.ts';
import { VERSION } from '../core/version.ts';
import { benchCommand } from './bench.ts';
import { convertCommand } from './convert.ts';
import { infoCommand } from './info.ts';
import { modelsCommand } from './models.ts';
import { reportError } from './output.ts';
import { trainCommand } from './train.ts';
import { segmentCommand } from './segment.ts';
import { demoCommand } from './demo.ts';
import { evaluateCommand } from './evaluate.ts';
import { keysCommand } from './keys.ts';
import { serveCommand } from './serve.ts';
import { workerCommand } from './worker.ts';
import { restoreCommand } from './restore.ts';

export { VERSION };

export const mainCommand = defineCommand({
  meta: { name: 'gatedvision', version: VERSION, description: 'Exact-geometry medical image I/O and gated linear-attention models' },
  subCommands: { info: infoCommand, convert: convertCommand, models: modelsCommand, bench: benchCommand, train: trainCommand, segment: segmentCommand, demo: demoCommand, evaluate: evaluateCommand, serve: serveCommand, keys: keysCommand, worker: workerCommand, restore: restoreCommand },
});

/** Runs the CLI and returns the exit status; never throws. */
export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(`${await renderUsage(mainCommand)}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const subs = mainCommand.subCommands as Record<string, unknown>;
  if (!argv[0]!.startsWith('-') && !(argv[0]! in subs)) {
    return reportError(new GatedError('usage', `unknown command '${argv[0]}'; commands: ${Object.keys(subs).join(', ')}`), json);
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    const sub = subs[argv[0]!] as typeof mainCommand;
    process.stdout.write(`${await renderUsage(sub, mainCommand)}\n`);
    return 0;
  }
  try {
    await runCommand(mainCommand, { rawArgs: argv });
    return 0;
  } catch (e) {
    return reportError(asUsage(e), json);
  }
}

// citty reports missing positionals/unknown commands as its own error class; those are usage errors.
function asUsage(e: unknown): unknown {
  if (e instanceof Error && e.name === 'CLIError') return new GatedError('usage', e.message);
  return e;
}
