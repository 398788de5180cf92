/** How the CLI speaks: one line per error (never a stack), JSON when asked, progress on stderr. */
import { createRequire } from 'node:module';
import { ERROR_CODES, toGatedError, type GatedError } from '../core/errors.ts';
import type { Progress } from '../io/types.ts';

export function errorLine(err: GatedError): string {
  return `error ${err.code}: ${err.message} (${ERROR_CODES[err.code].hint})`;
}

export function reportError(thrown: unknown, json: boolean): number {
  const err = toGatedError(thrown, 'internal');
  if (json) process.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`);
  else process.stderr.write(`${errorLine(err)}\n`);
  if (err.code === 'internal' && process.env.GATEDVISION_DEBUG) process.stderr.write(`${String((err.cause as Error | undefined)?.stack ?? err.stack)}\n`);
  return err.exitCode;
}

/** A progress bar with ETA on a terminal; otherwise a plain line at each 10 % step. */
export function progressReporter(label: string, quiet = false): { onProgress: Progress; stop(): void } {
  if (quiet) return { onProgress: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    // loaded only for a terminal: piped runs (batch jobs, the service, benchmarks) start without its ~20 modules
    const { SingleBar, Presets } = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
    const bar = new SingleBar({ format: `${label} [{bar}] {percentage}% {value}/{total} {what} ETA {eta_formatted}`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
    let started = false;
    return {
      onProgress: (done, total, what) => {
        if (!started) {
          bar.start(total, done, { what });
          started = true;
        } else {
          bar.setTotal(total);
          bar.update(done, { what });
        }
      },
      stop: () => started && bar.stop(),
    };
  }
  let lastStep = -1;
  return {
    onProgress: (done, total, what) => {
      const step = total > 0 ? Math.floor((10 * done) / total) : 0;
      if (step !== lastStep) {
        lastStep = step;
        process.stderr.write(`${label}: ${what} ${done}/${total}\n`);
      }
    },
    stop: () => undefined,
  };
}
