/**
 * Time of one training step of a restoration or segmentation preset on a device, and where it goes: the median
 * wall time of a few steps (loss read back), then one profiled step with the kernels grouped by name (time
 * is the backend's own per-kernel timing: GPU timestamps on WebGPU when the adapter has them, else wall time).
 * Then, unless `--no-loop`, the step as `train` runs it (training mode, the freeing backward pass, AdamW, a batch of
 * real crops made on the host with noise stored as 8-bit) timed in parts, twice: one part after the other, and in the
 * order of a loop that makes its batches on the main thread (the next batch made while the step is queued: segment
 * training, and restore training without its batch thread). If the second total is not below the first, the device
 * did not run the step while the host made the batch.
 *
 *   npx tsx bench/train_step.ts --device wasm --model restore_test --batch 2 --patch 64
 *   bash .gpu/run.sh train-step --device webgpu --model denoise_vig_h_small --batch 16 --patch 128   (GPU host, scripts/gpu_cli.ts)
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { buildTaskModel } from '../pipelines/task_model.ts';
import { withTraining } from '../backbones/layers/drop_path.ts';
import { variableGradsFreeing } from '../backbones/layers/recompute.ts';
import { DENOISE_DEGRADE, makeRestoreBatch, restoreSpec, type RestoreImage } from '../pipelines/train/restore_data.ts';
import { RESTORE_LOSS_DEFAULTS, restoreLoss } from '../pipelines/train/restore_loss.ts';
import { AdamW, ADAMW_DEFAULTS } from '../pipelines/train/optim.ts';
import { Rng } from '../pipelines/train/rng.ts';

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
      'no-loop': { type: 'boolean', default: false },
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
  if (!values['no-loop']) await loopStep(model, B, P, Number(values.repeat));
  model.dispose();
}

/** The loop's step in parts: batch making, queueing (forward, backward, AdamW), waiting for the loss. */
async function loopStep(model: ReturnType<typeof buildTaskModel>, B: number, P: number, repeat: number): Promise<void> {
  const vars = model.variables();
  const opt = new AdamW({ ...ADAMW_DEFAULTS, warmupSteps: 1, totalSteps: 1000, lr: 1e-5 });
  // photograph-like planes (smooth shading + edges + fine texture) at 8-bit steps, four times the patch across
  const rngImg = new Rng(3);
  const images: RestoreImage[] = Array.from({ length: 4 }, (_, k) => {
    const n = 4 * P;
    const clean = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) clean[i * n + j] = Math.round(255 * Math.min(1, Math.max(0, 0.5 + 0.3 * Math.sin((i + 7 * k) / 23) * Math.cos(j / 31) + (((i >> 4) + (j >> 4)) % 2 ? 0.15 : -0.15) + 0.05 * (rngImg.next() - 0.5)))) / 255;
    return { name: `synthetic${k}`, h: n, w: n, clean, levels: 255 };
  });
  const rng = new Rng(7);
  const make = () => makeRestoreBatch(images, B, P, DENOISE_DEGRADE, rng);
  const queue = (b: { x: Float32Array; y: Float32Array }) => {
    const xt = tf.tensor4d(b.x, [B, P, P, 1]);
    const yt = tf.tensor4d(b.y, [B, P, P, 1]);
    const { value, grads } = variableGradsFreeing(() => withTraining(() => restoreLoss(model.predict(xt), yt, RESTORE_LOSS_DEFAULTS), { seed: 1 }), vars);
    opt.apply(new Map(vars.filter((v) => grads[v.name]).map((v) => [v, grads[v.name]!])));
    tf.dispose([xt, yt, ...Object.values(grads)]);
    return value;
  };
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)]!;
  const times = () => ({ batch: [] as number[], queue: [] as number[], wait: [] as number[], total: [] as number[] });
  const parts = { seq: times(), overlap: times() };
  let batch = make();
  for (let r = 0; r < repeat + 1; r++) {
    // one after the other
    let t0 = performance.now();
    batch = make();
    let t1 = performance.now();
    let v = queue(batch);
    let t2 = performance.now();
    await v.data();
    let t3 = performance.now();
    v.dispose();
    if (r > 0) (parts.seq.batch.push(t1 - t0), parts.seq.queue.push(t2 - t1), parts.seq.wait.push(t3 - t2), parts.seq.total.push(t3 - t0));
    // the loop's order
    t0 = performance.now();
    v = queue(batch);
    t1 = performance.now();
    batch = make();
    t2 = performance.now();
    await v.data();
    t3 = performance.now();
    v.dispose();
    if (r > 0) (parts.overlap.queue.push(t1 - t0), parts.overlap.batch.push(t2 - t1), parts.overlap.wait.push(t3 - t2), parts.overlap.total.push(t3 - t0));
  }
  const prof = await tf.profile(async () => {
    const v = queue(batch);
    await v.data();
    v.dispose();
  });
  opt.dispose();
  const row = (n: string, p: typeof parts.seq) => `| ${n} | ${median(p.batch).toFixed(1)} | ${median(p.queue).toFixed(1)} | ${median(p.wait).toFixed(1)} | **${median(p.total).toFixed(1)}** |`;
  process.stdout.write(`\nthe loop's step (training mode, freeing backward, AdamW, real crops; medians of ${repeat}; ${prof.kernels.length} kernels)\n| order | batch (host) | queue (host) | wait for the loss | total |\n|---|---|---|---|---|\n${row('one after the other', parts.seq)}\n${row("loop's (batch made while the step runs)", parts.overlap)}\n`);
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
