/**
 * `gatedvision segment <inputs...> -o <outdir> --model <name|dir>`: batch segmentation with the model loaded
 * once, a run manifest for --resume and --part, a progress bar with ETA (plain lines when not on a terminal),
 * and an HTML report with previews.
 */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';
import { DEVICES, selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { segmentBatch, type SegFormat } from '../pipelines/segment.ts';
import { loadTaskModel } from '../pipelines/task_model.ts';
import { progressReporter } from './output.ts';

const FORMATS: SegFormat[] = ['nifti', 'dicom-seg', 'png'];

export const segmentCommand = defineCommand({
  meta: { name: 'segment', description: 'Segment files, DICOM folders, zips, NIfTI volumes and images' },
  args: {
    inputs: { type: 'positional', required: true, description: 'files or folders (several allowed)' },
    output: { type: 'string', alias: 'o', required: true, description: 'output folder' },
    model: { type: 'string', default: 'brain', description: 'a shipped model name or a model folder' },
    device: { type: 'string', default: 'auto', description: `backend: ${DEVICES.join(', ')}` },
    format: { type: 'string', default: 'nifti', description: 'comma-separated: nifti, dicom-seg, png' },
    resume: { type: 'boolean', description: 'skip inputs the run manifest records as done with the same model and options' },
    part: { type: 'string', description: 'i/n: process only shard i of n (deterministic by input name)' },
    tta: { type: 'boolean', description: 'average with the left-right mirrored prediction' },
    lcc: { type: 'boolean', description: 'keep only the largest connected component per class (default: as the model says)' },
    'max-side': { type: 'string', description: 'slices larger than this are tiled (default 1024)' },
    report: { type: 'boolean', default: true, description: 'write previews and report.html (--no-report skips them)' },
    json: { type: 'boolean', description: 'print the summary as JSON' },
  },
  async run({ args }) {
    const inputs = (args._ as string[]).length ? (args._ as string[]) : [args.inputs as string];
    const formats = String(args.format).split(',').map((f) => f.trim()) as SegFormat[];
    for (const f of formats) if (!FORMATS.includes(f)) throw new GatedError('usage', `unknown format '${f}'; use ${FORMATS.join(', ')}`);
    const device = args.device as DeviceRequest;
    if (!DEVICES.includes(device)) throw new GatedError('usage', `unknown device '${args.device}'; use one of ${DEVICES.join(', ')}`);
    const maxSide = args['max-side'] === undefined ? undefined : Number(args['max-side']);
    if (maxSide !== undefined && !(Number.isInteger(maxSide) && maxSide >= 32)) throw new GatedError('usage', `--max-side must be an integer ≥ 32`);
    const json = Boolean(args.json);
    const choice = await selectDevice(device);
    if (!json) process.stderr.write(`${choice.reason}\n`);
    const model = await loadTaskModel(String(args.model));
    const cases = progressReporter('segment', json);
    let summary;
    try {
      summary = await segmentBatch(inputs, model, {
        outDir: String(args.output),
        formats,
        resume: Boolean(args.resume),
        ...(args.part ? { part: String(args.part) } : {}),
        ...(args.tta ? { tta: true } : {}),
        ...(args.lcc ? { largestComponent: true } : {}),
        ...(maxSide ? { maxSide } : {}),
        report: args.report !== false,
        modelName: String(args.model),
        device: choice.backend,
        onCase: (done, total, name) => cases.onProgress(done, total, name),
      });
    } finally {
      cases.stop();
      model.dispose();
    }
    if (json) process.stdout.write(`${JSON.stringify({ ...summary, records: summary.records })}\n`);
    else {
      for (const r of summary.records) if (r.status !== 'done') process.stderr.write(`${r.status} ${r.input}: ${r.code}: ${r.message}\n`);
      process.stdout.write(`${summary.done} done, ${summary.skipped} skipped (already done), ${summary.rejected} rejected, ${summary.failed} failed of ${summary.total}\n`);
      process.stdout.write(`manifest: ${summary.manifest}\n`);
      if (summary.report) process.stdout.write(`report: ${summary.report}\n`);
    }
    if (summary.failed > 0 || (summary.rejected > 0 && summary.done + summary.skipped === 0)) process.exitCode = summary.failed > 0 ? 1 : 3;
  },
});
