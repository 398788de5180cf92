/**
 * Trains the `denoise` model (what `gatedvision train --task restore` runs):
 *   npx tsx bench/denoise/train.ts --data DATA/train -o models/denoise [--model denoise_vig_h_small]
 *     [--epochs 40] [--batch 16] [--patch 128] [--steps 50] [--lr 1e-3] [--device webgpu] [--max-minutes 8]
 * DATA comes from bench/denoise/prepare_data.py.
 */
import { selectDevice, type DeviceRequest } from '../../kernels/backend.ts';
import { trainRestore } from '../../pipelines/train/restore_data.ts';

const argv = process.argv.slice(2);
const arg = (name: string, dflt?: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const out = arg('o') ?? arg('output');
const data = arg('data');
if (!out || !data) {
  process.stderr.write('usage: train.ts --data DIR -o OUT [--model P] [--epochs N] [--batch N] [--patch N] [--steps N] [--lr X] [--device D] [--max-minutes M]\n');
  process.exit(2);
}
const choice = await selectDevice((arg('device', 'auto') as DeviceRequest) ?? 'auto');
process.stderr.write(`device: ${choice.reason}\n`);
const res = await trainRestore({
  data,
  model: arg('model', 'denoise_vig_h_small')!,
  outDir: out,
  name: arg('name', 'denoise')!,
  epochs: Number(arg('epochs', '40')),
  batch: Number(arg('batch', '16')),
  patch: Number(arg('patch', '128')),
  ...(arg('steps') ? { stepsPerEpoch: Number(arg('steps')) } : {}),
  ...(arg('lr') ? { lr: Number(arg('lr')) } : {}),
  seed: Number(arg('seed', '1')),
  resume: argv.includes('--resume'),
  ...(arg('init') ? { init: arg('init')! } : {}),
  ...(arg('max-minutes') ? { maxSeconds: Number(arg('max-minutes')) * 60 } : {}),
  log: (l) => process.stderr.write(`${l}\n`),
  command: `npx tsx bench/denoise/train.ts ${argv.join(' ')}`,
  device: choice.backend,
});
process.stdout.write(`best validation PSNR ${res.bestScore.toFixed(2)} dB at epoch ${res.bestEpoch}; model in ${out}\n`);
