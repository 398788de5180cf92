/** `gatedvision info <input> [--json]`: what an input holds, with geometry and every problem found. */
import { defineCommand } from 'citty';
import { describeInput } from '../pipelines/convert.ts';
import type { LoadResult } from '../io/types.ts';
import { progressReporter } from './output.ts';

export interface InfoJson {
  format: LoadResult['format'];
  shape: number[];
  spacing: number[];
  affine: number[][];
  dtype: string;
  modality: string | null;
  orientation: string | null;
  rescale: { slope: number; intercept: number } | null;
  series: LoadResult['series'];
  warnings: LoadResult['warnings'];
  rejected: LoadResult['rejected'];
}

export function infoJson(res: LoadResult): InfoJson {
  const v = res.volumes[0]!;
  return {
    format: res.format,
    shape: v.shape,
    spacing: v.spacing.map(round6),
    affine: v.affine.map((r) => r.map(round6)),
    dtype: v.dtype,
    modality: v.meta.modality ?? null,
    orientation: v.meta.orientation ?? null,
    rescale: v.meta.rescale ?? null,
    series: res.series,
    warnings: res.warnings,
    rejected: res.rejected,
  };
}

export const infoCommand = defineCommand({
  meta: { name: 'info', description: 'Describe a DICOM file/folder/zip, NIfTI volume or image' },
  args: {
    input: { type: 'positional', required: true, description: 'file, folder or zip' },
    json: { type: 'boolean', description: 'print JSON' },
    resample: { type: 'boolean', description: 'resample irregular DICOM stacks onto a regular grid' },
  },
  async run({ args }) {
    const progress = progressReporter('reading', Boolean(args.json));
    let res: LoadResult;
    try {
      res = await describeInput(args.input, { onProgress: progress.onProgress, resample: Boolean(args.resample) });
    } finally {
      progress.stop();
    }
    const info = infoJson(res);
    if (args.json) {
      process.stdout.write(`${JSON.stringify(info)}\n`);
      return;
    }
    const lines = [
      `format      ${info.format}`,
      `shape       ${info.shape.join(' x ')}  (${info.dtype})`,
      `spacing     ${info.spacing.map((s) => s.toFixed(4)).join(' x ')} mm`,
      `orientation ${info.orientation ?? '?'}${info.modality ? `   modality ${info.modality}` : ''}`,
      `affine      ${info.affine.slice(0, 3).map((r) => `[${r.map((x) => x.toFixed(4)).join(', ')}]`).join('\n            ')}`,
    ];
    if (info.rescale) lines.push(`rescale     slope ${info.rescale.slope}, intercept ${info.rescale.intercept}`);
    if (res.series.length > 1) {
      lines.push(`series      ${res.series.length}`);
      res.series.forEach((s, i) => lines.push(`  [${i}] ${s.seriesNumber ?? '-'} ${s.modality ?? ''} ${s.description ?? ''} ${s.shape.join('x')} (${s.files} files)`));
    }
    for (const w of res.warnings) lines.push(`warning     ${w.code}: ${w.message}`);
    for (const r of res.rejected) lines.push(`skipped     ${r.name}: ${r.code}: ${r.message}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  },
});

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6 + 0;
}
