/**
 * Input → NIfTI/PNG files. Runs inside the decoding sandbox, so the decoded volume never crosses into
 * the caller: only the written paths and the findings come back (the caller's memory stays flat).
 * The readers and writers are imported where they run (in the child), so the calling process starts
 * with nothing but the sandbox supervisor loaded.
 */
import { join } from 'node:path';
import { GatedError } from '../core/errors.ts';
import { resolveLimits } from '../core/limits.ts';
import type { LoadOptions } from '../io/load.ts';
import { runSandboxed } from '../io/sandbox.ts';
import type { LoadResult } from '../io/types.ts';
import type { Volume } from '../io/volume.ts';

export type OutKind = 'nii' | 'nii.gz' | 'png';
export type ConvertTarget = { kind: 'file'; path: string; format: OutKind } | { kind: 'folder'; path: string };

export interface ConvertResult {
  outputs: string[];
  warnings: LoadResult['warnings'];
  rejected: LoadResult['rejected'];
}

/** Converts in a sandboxed child unless opts.sandbox is false. */
export async function convertInput(input: string, target: ConvertTarget, opts: LoadOptions = {}): Promise<ConvertResult> {
  if (opts.sandbox === false) return convertInputDirect(input, target, opts);
  const limits = resolveLimits(opts.limits);
  const { onProgress, signal, ...rest } = opts;
  return runSandboxed<ConvertResult>('convert', { input, target, opts: { ...rest, limits, sandbox: false } }, { limits, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) });
}

export async function convertInputDirect(input: string, target: ConvertTarget, opts: LoadOptions = {}): Promise<ConvertResult> {
  const [{ loadInputDirect }, { writeFileAtomic }] = await Promise.all([import('../io/load.ts'), import('../core/atomic.ts')]);
  const res = await loadInputDirect(input, { ...opts, sandbox: false });
  if (target.kind === 'file' && res.volumes.length > 1) {
    throw new GatedError('usage', `the input holds ${res.volumes.length} series; give a folder as output to write one file per series`);
  }
  const outputs: string[] = [];
  for (let i = 0; i < res.volumes.length; i++) {
    const v = res.volumes[i]!;
    const path = target.kind === 'file' ? target.path : join(target.path, `series-${String(i + 1).padStart(3, '0')}.nii.gz`);
    const kind = target.kind === 'file' ? target.format : 'nii.gz';
    await writeFileAtomic(path, await encode(v, kind));
    outputs.push(path);
    res.volumes[i] = undefined as never; // let the voxels go before the next series is written
  }
  return { outputs, warnings: res.warnings, rejected: res.rejected };
}

/** The description of an input without its voxels (what `info` needs), decoded in the sandbox. */
export async function describeInput(input: string, opts: LoadOptions = {}): Promise<LoadResult> {
  if (opts.sandbox === false) {
    const { loadInputDirect } = await import('../io/load.ts');
    return stripVoxels(await loadInputDirect(input, opts));
  }
  const limits = resolveLimits(opts.limits);
  const { onProgress, signal, ...rest } = opts;
  return runSandboxed<LoadResult>('describe', { input, opts: { ...rest, limits, sandbox: false } }, { limits, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) });
}

export function stripVoxels(res: LoadResult): LoadResult {
  return { ...res, volumes: res.volumes.map((v) => ({ ...v, data: new Uint8Array(0) })) };
}

// --- internal ---

async function encode(v: Volume, kind: OutKind): Promise<Uint8Array | Uint8Array[]> {
  if (kind === 'png') {
    if ((v.shape[2] ?? 1) !== 1) throw new GatedError('usage', `PNG output needs a 2D input; this one has ${v.shape[2]} slices (write .nii.gz instead)`);
    const { writePng } = await import('../io/image/write.ts');
    return writePng(v, pngWindow(v));
  }
  const { niftiParts } = await import('../io/nifti/write.ts');
  return niftiParts(v, { gzip: kind === 'nii.gz' });
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

