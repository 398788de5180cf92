/** `gatedvision train --task segment|restore --data <dir> --model <preset|backbone> -o <dir>`. */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';
import { DEVICES, selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { parseAugment } from '../pipelines/train/augment.ts';
import { PATCH_SAMPLING, trainRestore, type PatchSampling } from '../pipelines/train/restore_data.ts';
import { trainSegment } from '../pipelines/train/segment.ts';

export const trainCommand = defineCommand({
  meta: { name: 'train', description: 'Train a segmentation or restoration model (checkpoints every epoch; --resume continues)' },
  args: {
    task: { type: 'string', default: 'segment', description: 'segment | restore' },
    data: { type: 'string', required: true, description: 'segment: imagesTr/ + labelsTr/ (NIfTI) or images/ + masks/; restore: a folder of clean images (or clean/ + noisy/)' },
    model: { type: 'string', default: 'seg_vig_h_small', description: 'a preset (segment: seg_vig_h_small, seg_test; restore: denoise_vig_h_small, denoise_vig_h_small_rb4, denoise_vig_h) or a backbone name' },
    kind: { type: 'string', description: 'restore: denoise (default) or deblur' },
    sample: { type: 'string', description: 'restore: how patches pick their image, image (each equally often; default) or area (in proportion to its pixels)' },
    output: { type: 'string', alias: 'o', required: true, description: 'output model folder' },
    name: { type: 'string', description: 'model name (default: the output folder name)' },
    classes: { type: 'string', description: 'comma-separated class names, background first' },
    epochs: { type: 'string', default: '50' },
    batch: { type: 'string', default: '8' },
    patch: { type: 'string', description: 'square training patch size (default: the largest slice)' },
    steps: { type: 'string', description: 'steps per epoch (default: one pass over the training slices)' },
    lr: { type: 'string', description: 'peak learning rate (default 2e-3)' },
    seed: { type: 'string', default: '1' },
    device: { type: 'string', default: 'auto', description: `backend: ${DEVICES.join(', ')}` },
    'max-minutes': { type: 'string', description: 'wall-clock budget; epochs are cut after the first to fit it' },
    init: { type: 'string', description: 'start from the weights of this model folder (fine-tuning)' },
    resume: { type: 'boolean', description: 'continue from the checkpoint in the output folder' },
    ema: { type: 'string', description: 'keep a moving average of the weights with this decay, e.g. 0.999; validation and the saved model use it' },
    augment: { type: 'string', description: 'segment: default | none | key=value pairs over the defaults, e.g. rotateDeg=8,scale=0.85:1.2,intensityP=0.3' },
  },
  async run({ args, rawArgs }) {
    const int = (v: string | undefined, what: string) => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new GatedError('usage', `--${what} must be a positive integer; got '${v}'`);
      return n;
    };
    const augment = args.augment === undefined ? undefined : parseAugment(args.augment);
    const device = args.device as DeviceRequest;
    if (!DEVICES.includes(device)) throw new GatedError('usage', `unknown device '${args.device}'; use one of ${DEVICES.join(', ')}`);
    if (args.sample !== undefined && (args.task !== 'restore' || !PATCH_SAMPLING.includes(args.sample as PatchSampling)))
      throw new GatedError('usage', args.task !== 'restore' ? '--sample applies to --task restore' : `--sample must be ${PATCH_SAMPLING.join(' or ')}; got '${args.sample}'`);
    const ema = args.ema === undefined ? undefined : Number(args.ema);
    if (ema !== undefined && !(String(args.ema).trim() !== '' && ema > 0 && ema < 1)) throw new GatedError('usage', `--ema must be a number between 0 and 1 (exclusive), e.g. 0.999; got '${args.ema}'`);
    const choice = await selectDevice(device);
    process.stderr.write(`device: ${choice.reason}\n`);
    if (args.task !== 'segment' && args.task !== 'restore') throw new GatedError('usage', `--task must be segment or restore; got '${args.task}'`);
    const lr = args.lr === undefined ? undefined : Number(args.lr);
    if (lr !== undefined && !(lr > 0)) throw new GatedError('usage', `--lr must be a positive number; got '${args.lr}'`);
    const out = args.output;
    // first Ctrl-C: finish the epoch, write its checkpoint and stop; a second one kills as usual
    const stop = new AbortController();
    process.once('SIGINT', () => {
      process.stderr.write('stopping after this epoch (Ctrl-C again to abort now)\n');
      stop.abort();
    });
    const common = {
      data: args.data,
      outDir: out,
      name: args.name ?? out.replace(/\/+$/, '').split('/').pop()!,
      epochs: int(args.epochs, 'epochs')!,
      batch: int(args.batch, 'batch')!,
      ...(args.patch ? { patch: int(args.patch, 'patch')! } : {}),
      ...(args.steps ? { stepsPerEpoch: int(args.steps, 'steps')! } : {}),
      ...(lr ? { lr } : {}),
      ...(ema !== undefined ? { ema } : {}),
      seed: int(args.seed, 'seed')!,
      resume: Boolean(args.resume),
      ...(args['max-minutes'] ? { maxSeconds: Number(args['max-minutes']) * 60 } : {}),
      ...(args.init ? { init: args.init } : {}),
      signal: stop.signal,
      log: (l: string) => process.stderr.write(`${l}\n`),
      command: `gatedvision train ${rawArgs.join(' ')}`,
      device: choice.backend,
    };
    if (args.task === 'restore') {
      const res = await trainRestore({ ...common, model: args.model === 'seg_vig_h_small' ? 'denoise_vig_h_small' : args.model, ...(args.kind ? { kind: args.kind as 'denoise' | 'deblur' } : {}), ...(args.sample ? { sample: args.sample as PatchSampling } : {}) });
      process.stdout.write(`best validation PSNR ${res.bestScore.toFixed(2)} dB at epoch ${res.bestEpoch}; model in ${out}\n`);
      return;
    }
    const res = await trainSegment({ ...common, model: args.model, ...(args.classes ? { classes: args.classes.split(',').map((c) => c.trim()) } : {}), ...(augment ? { augment } : {}) });
    process.stdout.write(`best validation score ${res.bestScore.toFixed(4)} at epoch ${res.bestEpoch}; model in ${out}\n`);
  },
});
