/**
 * Kernels per forward pass (or per training step): on the GPU a ViG forward is bound by the number of kernels
 * issued, not by their arithmetic, so this count is the number to bring down. Two counts, both independent of
 * the GPU (SwiftShader gives the H200's numbers):
 *   - engine kernel calls (tf.profile), by kernel name: the host work per call (tape, bookkeeping) is paid for
 *     every one, reshapes included;
 *   - WebGPU dispatches (runWebGPUProgram calls), by shader key: the calls that record GPU work.
 *
 *   npx tsx bench/kernel_count.ts --device webgpu --software --models vig_t,deit_t --size 224
 *   npx tsx bench/kernel_count.ts --device webgpu --software --models seg_vig_h_small --size 64 --train
 *   ... --dry-run   (count without compiling or running any WebGPU program: same counts, seconds instead of minutes)
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { createBackbone } from '../backbones/_registry.ts';
import { selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import type { WebGPUBackend, WebGPUProgram } from '../kernels/_webgpu_internal.ts';
import { buildTaskModel } from '../pipelines/task_model.ts';
import { diceCeLoss } from '../pipelines/train/seg_loss.ts';
import { specFromPreset } from '../pipelines/train/presets.ts';

export interface KernelCount {
  /** Engine kernel calls, reshapes included. */
  kernels: number;
  byKernel: Record<string, number>;
  /** WebGPU program dispatches (null on other backends). */
  dispatches: number | null;
  byProgram: Record<string, number>;
}

/**
 * Counts the kernels `f` runs (after one uncounted call, so one-off work such as building packed weights is not
 * in it). `dryRun` (WebGPU): every program is counted and given an output of its shape, but nothing is compiled or
 * dispatched, so the values are garbage; which programs run depends on shapes only, so the count is the real
 * one, in a fraction of the time on a software adapter.
 */
export async function countKernels(f: () => tf.TensorContainer, opts: { dryRun?: boolean } = {}): Promise<KernelCount> {
  const gpu = tf.getBackend() === 'webgpu' ? (tf.backend() as unknown as WebGPUBackend) : null;
    const run = gpu?.runWebGPUProgram;
  if (opts.dryRun && gpu && run) {
    // as runWebGPUProgram up to the compile: output and inputs get GPU buffers (so later ops see GPU-resident data
    // and take the same paths as in a real run), then nothing is compiled or recorded
    gpu.runWebGPUProgram = function (this: WebGPUBackend, program: WebGPUProgram, inputs: tf.TensorInfo[], dtype: tf.DataType, _u?: unknown, output?: tf.TensorInfo) {
      const out = output ?? this.makeTensorInfo(program.outputShape, dtype);
      if (out.shape.reduce((a, b) => a * b, 1) === 0) return run.call(this, program, inputs, dtype, undefined, out);
      const upload = (this as unknown as { uploadToGPU: (id: object) => void }).uploadToGPU.bind(this);
      upload(out.dataId);
      for (const i of inputs) upload(i.dataId);
      return out;
    } as typeof gpu.runWebGPUProgram;
  }
  try {
    tf.dispose(f());
    return await countCalls(f, gpu);
  } finally {
    if (gpu && run) gpu.runWebGPUProgram = run;
  }
}

async function countCalls(f: () => tf.TensorContainer, gpu: WebGPUBackend | null): Promise<KernelCount> {
  const byProgram: Record<string, number> = {};
  let dispatches = 0;
  const original = gpu?.runWebGPUProgram;
  if (gpu && original) {
    gpu.runWebGPUProgram = function (this: WebGPUBackend, program: WebGPUProgram, ...rest: unknown[]) {
      dispatches++;
      const key = program.shaderKey.split('_').slice(0, 3).join('_');
      byProgram[key] = (byProgram[key] ?? 0) + 1;
      return (original as (...a: unknown[]) => tf.TensorInfo).call(this, program, ...rest);
    } as typeof gpu.runWebGPUProgram;
  }
  try {
    const prof = await tf.profile(f);
    tf.dispose(prof.result as tf.TensorContainer);
    const byKernel: Record<string, number> = {};
    for (const k of prof.kernels) byKernel[k.name] = (byKernel[k.name] ?? 0) + 1;
    return { kernels: prof.kernels.length, byKernel, dispatches: gpu ? dispatches : null, byProgram };
  } finally {
    if (gpu && original) gpu.runWebGPUProgram = original;
  }
}

/** One forward of a backbone (`name` registered) or one training step of a segmentation preset (`--train`). */
export function workload(name: string, size: number, train: boolean): { run: () => tf.TensorContainer; dispose: () => void } {
  if (name.startsWith('seg_')) {
    const model = buildTaskModel(specFromPreset(name, 'segment', name, ['background', 'a', 'b']));
    const ch = model.manifest.input.channels;
    const x = tf.randomNormal([1, size, size, ch], 0, 1, 'float32', 1) as tf.Tensor4D;
    const onehot = tf.cast(tf.oneHot(tf.zeros([1, size, size], 'int32'), 3), 'float32') as tf.Tensor4D;
    const vars = model.variables();
    const run = train
      ? () => {
          const { value, grads } = tf.variableGrads(() => diceCeLoss(model.predict(x), onehot, 3), vars);
          return [value, ...Object.values(grads)];
        }
      : () => model.predict(x);
    return { run, dispose: () => (tf.dispose([x, onehot]), model.dispose()) };
  }
  const model = createBackbone(name, { seed: 0 });
  const x = tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const vars = model.params.variables();
  const run = train
    ? () => {
        const { value, grads } = tf.variableGrads(() => tf.mean(model.forward(x) as tf.Tensor) as tf.Scalar, vars);
        return [value, ...Object.values(grads)];
      }
    : () => model.forward(x);
  return { run, dispose: () => (x.dispose(), model.dispose()) };
}

export async function main(args: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      device: { type: 'string', default: 'webgpu' },
      software: { type: 'boolean', default: false },
      models: { type: 'string', default: 'vig_t,deit_t' },
      size: { type: 'string', default: '224' },
      train: { type: 'boolean', default: false },
      top: { type: 'string', default: '25' },
      'dry-run': { type: 'boolean', default: false },
    },
  });
  const choice = await selectDevice(values.device as DeviceRequest, { allowSoftware: values.software });
  process.stdout.write(`${choice.reason}\n`);
  for (const name of values.models!.split(',')) {
    const w = workload(name, Number(values.size), values.train!);
    const c = await countKernels(w.run, { dryRun: values['dry-run'] });
    w.dispose();
    const top = (m: Record<string, number>) => Object.entries(m).sort((a, b) => b[1] - a[1]).slice(0, Number(values.top)).map(([k, n]) => `  ${String(n).padStart(5)}  ${k}`).join('\n');
    process.stdout.write(`\n${name} ${values.size}² ${values.train ? 'training step' : 'forward'}: ${c.kernels} kernel calls (${c.kernels - (c.byKernel.Reshape ?? 0)} without reshapes), ${c.dispatches ?? '-'} GPU dispatches\n`);
    process.stdout.write(`by kernel:\n${top(c.byKernel)}\n`);
    if (c.dispatches !== null) process.stdout.write(`by program:\n${top(c.byProgram)}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}` && /kernel_count\.ts$/.test(process.argv[1] ?? '')) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
