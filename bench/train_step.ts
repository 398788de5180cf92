/**
 * Time of one training step of a restoration or segmentation preset on a device, and where it goes: the median
 * wall time of a few steps (loss read back), then one profiled step with the kernels grouped by name (time
 * is the backend's own per-kernel timing: GPU timestamps on WebGPU when the adapter has them, else wall time).
 *
 *   npx tsx bench/train_step.ts --device wasm --model restore_test --batch 2 --patch 64
 *   bash .gpu/run.sh train-step --device webgpu --model denoise_vig_h_small --batch 16 --patch 128   (GPU host, scripts/gpu_cli.ts)
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { buildTaskModel } from '../pipelines/task_model.ts';
import { restoreSpec } from '../pipelines/train/restore_data.ts';
import { restoreLoss } from '../pipelines/train/restore_loss.ts';

export async function main(args: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      device: { type: 'string', default: 'auto' },
      model: { type: 'string', default: 'denoise_vig_h_small' },
      batch: { type: 'string', default: '16' },
      patch: { type: 'string', default: '128' },
      repeat: { type: 'string', default: '3' },
      top: { type: 'string', default: '15' },
      software: { type: 'boolean', default: false },
    },
  });
  const choice = await selectDevice(values.device as DeviceRequest, { allowSoftware: values.software });
  const [B, P] = [Number(values.batch), Number(values.patch)];
  const model = buildTaskModel(restoreSpec(values.model!, values.model!));
  const vars = model.variables();
  const x = tf.randomUniform([B, P, P, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.randomUniform([B, P, P, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
  const step = async () => {
    const { value, grads } = tf.variableGrads(() => restoreLoss(model.predict(x), y), vars);
    await value.data();
    value.dispose();
    tf.dispose(Object.values(grads));
  };
  await step(); // shader compilation, weight upload
  const times: number[] = [];
  for (let r = 0; r < Number(values.repeat); r++) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const prof = await tf.profile(step);
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of prof.kernels) {
    const t = await k.kernelTimeMs;
    const ms = typeof t === 'number' ? t : 0;
    const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    byKernel.set(k.name, e);
  }
  const rows = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, Number(values.top));
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  process.stdout.write(`${choice.reason}\nmodel ${values.model}, batch ${B} x ${P}²: median step ${times[Math.floor(times.length / 2)]!.toFixed(1)} ms (${times.map((t) => t.toFixed(0)).join(', ')}); ${prof.kernels.length} kernels, ${total.toFixed(1)} ms summed\n`);
  process.stdout.write(`| kernel | calls | ms | share |\n|---|---|---|---|\n${rows.map(([n, e]) => `| ${n} | ${e.calls} | ${e.ms.toFixed(1)} | ${((100 * e.ms) / (total || 1)).toFixed(1)}% |`).join('\n')}\n`);
  tf.dispose([x, y]);
}

if (import.meta.url === `file://${process.argv[1]}` && /train_step\.ts$/.test(process.argv[1] ?? '')) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
