/** Runs an oracle script with Debian's python3 (which has pydicom, nibabel, numpy, skimage). */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export const PYTHON = '/usr/bin/python3';

export function runPython(script: string, args: string[] = [], opts: { timeoutMs?: number; input?: string } = {}): string {
  return execFileSync(PYTHON, ['-c', script, ...args], {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 1 << 30,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}

export function pythonJson<T>(script: string, args: string[] = [], opts: { timeoutMs?: number; input?: string } = {}): T {
  return JSON.parse(runPython(script, args, opts)) as T;
}

/** A script's first line that makes tests/_oracles importable (shared oracle helpers such as axial_slice.py). */
export const ORACLES_ON_PATH = `import sys; sys.path.insert(0, ${JSON.stringify(join(import.meta.dirname, '../_oracles'))})`;
