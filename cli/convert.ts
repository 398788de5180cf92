/**
 * `gatedvision convert <input> <output>`: NIfTI (.nii/.nii.gz) from any input, PNG from 2D inputs.
 * A folder output receives one file per series, named by position (never by identifiers from the file).
 */
import { defineCommand } from 'citty';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.ts';
import { GatedError } from '../core/errors.ts';
import { writePng } from '../io/image/write.ts';
import { loadInput } from '../io/load.ts';
import { writeNifti } from '../io/nifti/write.ts';
import type { Volume } from '../io/volume.ts';
import { progressReporter } from './output.ts';

type OutKind = 'nii' | 'nii.gz' | 'png';

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
    const progress = progressReporter('reading', Boolean(args.json));
    let res;
    try {
      res = await loadInput(args.input, { onProgress: progress.onProgress, resample: Boolean(args.resample) });
    } finally {
      progress.stop();
    }
    if (target.kind === 'file' && res.volumes.length > 1) {
      throw new GatedError('usage', `the input holds ${res.volumes.length} series; give a folder as output to write one file per series`);
    }
    const written: string[] = [];
    for (let i = 0; i < res.volumes.length; i++) {
      const v = res.volumes[i]!;
      const path = target.kind === 'file' ? target.path : join(target.path, `series-${String(i + 1).padStart(3, '0')}.nii.gz`);
      const kind = target.kind === 'file' ? target.format : 'nii.gz';
      await writeFileAtomic(path, await encode(v, kind));
      written.push(path);
    }
    if (args.json) process.stdout.write(`${JSON.stringify({ outputs: written, warnings: res.warnings, rejected: res.rejected })}\n`);
    else {
      for (const w of res.warnings) process.stderr.write(`warning ${w.code}: ${w.message}\n`);
      for (const p of written) process.stdout.write(`wrote ${p}\n`);
    }
  },
});

async function encode(v: Volume, kind: OutKind): Promise<Uint8Array> {
  if (kind === 'png') {
    if ((v.shape[2] ?? 1) !== 1) throw new GatedError('usage', `PNG output needs a 2D input; this one has ${v.shape[2]} slices (write .nii.gz instead)`);
    return writePng(v, pngWindow(v));
  }
  return writeNifti(v, { gzip: kind === 'nii.gz' });
}

/**
 * PNG holds 0-65535. Values that fit are written as they are; otherwise (CT in Hounsfield units, floats)
 * the series' own display window is used, or the value range when there is none.
 */
function pngWindow(v: Volume): { window?: [number, number] } {
  const slope = v.meta.rescale?.slope ?? 1;
  const inter = v.meta.rescale?.intercept ?? 0;
  let lo = Infinity;
  let hi = -Infinity;
  let integral = true;
  for (let i = 0; i < v.data.length; i++) {
    const x = (v.data[i] as number) * slope + inter;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
    if (integral && !Number.isInteger(x)) integral = false;
  }
  if (integral && lo >= 0 && hi <= 65535) return {};
  const w = v.meta.window;
  if (w && w.width > 0) return { window: [w.center - w.width / 2, w.center + w.width / 2] };
  return { window: [lo, hi > lo ? hi : lo + 1] };
}

async function resolveTarget(output: string): Promise<{ kind: 'file'; path: string; format: OutKind } | { kind: 'folder'; path: string }> {
  const lower = output.toLowerCase();
  if (lower.endsWith('.nii.gz')) return { kind: 'file', path: output, format: 'nii.gz' };
  if (lower.endsWith('.nii')) return { kind: 'file', path: output, format: 'nii' };
  if (lower.endsWith('.png')) return { kind: 'file', path: output, format: 'png' };
  const isDir = await stat(output).then((s) => s.isDirectory(), () => false);
  if (isDir || output.endsWith('/')) return { kind: 'folder', path: output };
  throw new GatedError('usage', `cannot tell the output format of '${output}': use .nii, .nii.gz, .png or an existing folder`);
}
