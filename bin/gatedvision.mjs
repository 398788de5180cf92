#!/usr/bin/env node
// Runs the bundled build (dist/, made by `npm ci` / `npm run build`) when it is newer than every source
// file; otherwise runs the TypeScript sources through tsx, so an edited checkout never runs stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'BUILT');

function newestSource(dir, depth = 0) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory() && depth < 6 && e.name !== 'node_modules' && !e.name.startsWith('.')) t = Math.max(t, newestSource(join(dir, e.name), depth + 1));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(join(dir, e.name)).mtimeMs);
  }
  return t;
}

const hasBuild = process.env.GATEDVISION_FROM_SOURCE !== '1' && existsSync(built);

function useBuild() {
  if (!hasBuild) return false;
  const b = statSync(built).mtimeMs;
  return ['core', 'io', 'kernels', 'backbones', 'heads', 'pipelines', 'service', 'cli'].every((d) => !existsSync(join(root, d)) || newestSource(join(root, d)) <= b);
}

const argv = process.argv.slice(2);
// `convert` loads only its own code (no models, kernels or tfjs): a third of the start-up time
const convertOnly = argv[0] === 'convert' && !argv.includes('--help') && !argv.includes('-h');
// The decoding child starts first, before the source check below, and loads its modules while this
// process checks and loads the command; a stale build's child is dropped unused.
const sandbox = convertOnly && hasBuild ? await import(pathToFileURL(join(root, 'dist', 'sandbox.mjs')).href) : undefined;
// DICOM/NIfTI decode in a worker thread of this process (no second Node start-up); images in a child process
const positional = argv.slice(1).filter((a) => !a.startsWith('-'));
sandbox?.prestartSandbox('convert', undefined, sandbox.sandboxModeFor?.(positional[0] ?? '', positional[1] ?? '') ?? 'process');
let main;
if (useBuild()) {
  if (convertOnly) {
    const { convertMain } = await import(pathToFileURL(join(root, 'dist', 'convert.mjs')).href);
    main = (a) => convertMain(a.slice(1));
  } else ({ main } = await import(pathToFileURL(join(root, 'dist', 'gatedvision.mjs')).href));
} else {
  sandbox?.dropSpare?.(); // (a build older than dropSpare leaves its unref'd child to end with this process)
  const { register } = await import('tsx/esm/api');
  register();
  if (convertOnly) {
    const { convertMain } = await import('../cli/convert.ts');
    main = (a) => convertMain(a.slice(1));
  } else ({ main } = await import('../cli/main.ts'));
}
process.exitCode = await main(argv);
