/**
 * `gatedvision restore <inputs...> -o <outdir> --model <name|dir>`: denoising/deblurring of images and volumes
 * with the model loaded once, tiles with overlap when asked, TLC local pooling for MAXIM, PSNR/SSIM against
 * references, and the same run manifest and progress as `segment`.
 */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';
import { DEVICES, selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { restoreBatch } from '../pipelines/restore.ts';
import { loadTaskModel } from '../pipelines/task_model.ts';
import { progressReporter } from './output.ts';

export const restoreCommand = defineCommand({
  meta: { name: 'restore', description: 'Denoise or deblur images and volumes (slice by slice), keeping grid, format and bit depth' },
  args: {
    inputs: { type: 'positional', required: true, description: 'files or folders (several allowed)' },
    output: { type: 'string', alias: 'o', required: true, description: 'output folder' },
    task: { type: 'string', default: 'denoise', description: 'denoise | deblur: picks the shipped model of that name when --model is not given' },
    model: { type: 'string', description: 'a shipped model name or a model folder (default: the --task name)' },
    tile: { type: 'string', description: 'tile side in pixels (default: whole slices)' },
    overlap: { type: 'string', description: 'pixels shared by neighbouring tiles (default: tile/8)' },
    'local-pooling': { type: 'boolean', description: 'TLC: MAXIM channel attention pools over the training size instead of the whole image' },
    'train-size': { type: 'string', description: 'window for --local-pooling (default: the model card\'s training patch, else 256)' },
    tta: { type: 'boolean', description: 'average the model over the 8 flips/rotations of each slice (about 8x slower, usually a little better)' },
    ref: { type: 'string', description: 'folder of clean references with the same file names: report PSNR/SSIM' },
    device: { type: 'string', default: 'auto', description: `backend: ${DEVICES.join(', ')}` },
    resume: { type: 'boolean', description: 'skip inputs the run manifest records as done with the same model and options' },
    part: { type: 'string', description: 'i/n: process only shard i of n (deterministic by input name)' },
    json: { type: 'boolean', description: 'print the summary as JSON' },
  },
  async run({ args }) {
    const inputs = (args._ as string[]).length ? (args._ as string[]) : [args.inputs as string];
    if (args.task !== 'denoise' && args.task !== 'deblur') throw new GatedError('usage', `--task must be denoise or deblur; got '${args.task}'`);
    const int = (v: string | undefined, what: string, min: number) => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new GatedError('usage', `--${what} must be a whole number ≥ ${min}; got '${v}'`);
      return n;
    };
    const tile = int(args.tile, 'tile', 16);
    const overlap = int(args.overlap, 'overlap', 0);
    if (overlap !== undefined && tile === undefined) throw new GatedError('usage', '--overlap needs --tile');
    const device = args.device as DeviceRequest;
    if (!DEVICES.includes(device)) throw new GatedError('usage', `unknown device '${args.device}'; use one of ${DEVICES.join(', ')}`);
    const json = Boolean(args.json);
    const choice = await selectDevice(device);
    if (!json) process.stderr.write(`${choice.reason}\n`);
    const modelName = String(args.model ?? args.task);
    const model = await loadTaskModel(modelName);
    const cardPatch = Number((model.manifest.card as { patch?: unknown } | undefined)?.patch);
    const trainSize = int(args['train-size'], 'train-size', 1) ?? (Number.isInteger(cardPatch) && cardPatch > 0 ? cardPatch : 256);
    const cases = progressReporter('restore', json);
    let summary;
    try {
      summary = await restoreBatch(inputs, model, {
        outDir: String(args.output),
        ...(tile ? { tile } : {}),
        ...(overlap !== undefined ? { overlap } : {}),
        ...(args['local-pooling'] ? { localPooling: [trainSize, trainSize] as [number, number] } : {}),
        ...(args.tta ? { tta: true } : {}),
        ...(args.ref ? { refDir: String(args.ref) } : {}),
        resume: Boolean(args.resume),
        ...(args.part ? { part: String(args.part) } : {}),
        modelName,
        device: choice.backend,
        onCase: (done, total, name) => cases.onProgress(done, total, name),
      });
    } finally {
      cases.stop();
      model.dispose();
    }
    if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else {
      for (const r of summary.records) {
        if (r.status !== 'done') process.stderr.write(`${r.status} ${r.input}: ${r.code}: ${r.message}\n`);
        else if (r.metrics) process.stdout.write(`${r.input}: PSNR ${r.metrics.inputPsnr.toFixed(2)} → ${r.metrics.psnr.toFixed(2)} dB, SSIM ${r.metrics.inputSsim.toFixed(4)} → ${r.metrics.ssim.toFixed(4)}\n`);
      }
      if (summary.metrics) process.stdout.write(`mean over ${summary.metrics.cases} with references: PSNR ${summary.metrics.inputPsnr.toFixed(2)} → ${summary.metrics.psnr.toFixed(2)} dB, SSIM ${summary.metrics.inputSsim.toFixed(4)} → ${summary.metrics.ssim.toFixed(4)}\n`);
      process.stdout.write(`${summary.done} done, ${summary.skipped} skipped (already done), ${summary.rejected} rejected, ${summary.failed} failed of ${summary.total}\n`);
      process.stdout.write(`manifest: ${summary.manifest}\n`);
    }
    if (summary.failed > 0 || (summary.rejected > 0 && summary.done + summary.skipped === 0)) process.exitCode = summary.failed > 0 ? 1 : 3;
  },
});
