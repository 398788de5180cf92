/**
 * GPU kernel benchmark: each of our ops beside the same op through its reference (the stock tfjs-webgpu
 * composite), same shapes, on one backend. Median ms per call over repeats: `inner` calls are queued back
 * to back and the last one awaited, so the GPU's time is measured rather than one read-back per call.
 * Peak = most bytes of GPU buffers in use during one call, inputs included (as torch.cuda.max_memory_allocated).
 *
 *   bash ../shared/gpu/pack.sh bench/gpu_kernels.ts && bash .gpu/run.sh --json   (on the GPU host)
 *   npx tsx bench/gpu_kernels.ts --software --small                              (here, SwiftShader)
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { trackPeakGpuBytes, type WebGPUBackend } from '../kernels/_webgpu_internal.ts';
import { setForceReference } from '../kernels/flags.ts';
import { installDawn } from '../kernels/webgpu_node.ts';
import { matmulFast } from '../kernels/matmul/op.ts';
import { halfMatmulShape } from '../kernels/matmul/webgpu_half.ts';
import { benchCases, glaAgreement, type BenchCase } from './gpu_kernels_cases.ts';

type GlaAgreement = Awaited<ReturnType<typeof glaAgreement>>;

export interface KernelBenchRow {
  op: string;
  shape: string;
  impl: string;
  /** Wall time per call, `inner` calls queued and the last awaited. */
  medianMs: number;
  /** GPU time per call from timestamp queries (sum over the call's dispatches), where the device has them. */
  gpuMs?: number;
  gflops?: number;
  peakMiB?: number;
  /** Per-dispatch GPU times of one call (program: ms). */
  kernels?: string;
}

export interface KernelBenchOptions {
  device?: DeviceRequest;
  /** Tiny shapes; the default off a hardware GPU (SwiftShader, wasm, cpu). */
  small?: boolean;
  repeat?: number;
  allowSoftware?: boolean;
  /** Only cases whose op name contains this. */
  only?: string;
}

async function time(fn: () => tf.Tensor, repeat: number, inner: number): Promise<number> {
  const run = async (n: number) => {
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < n; i++) outs.push(fn());
    const s = tf.sum(outs[outs.length - 1]!);
    await s.data();
    tf.dispose([s, ...outs]);
  };
  await run(Math.min(2, inner)); // warm-up: shader compilation and buffer pools
  const ts: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    await run(inner);
    ts.push((performance.now() - t0) / inner);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

/** Median GPU time per call from tfjs's timestamp-query profiling, and one call's per-program breakdown. */
async function gpuTime(fn: () => tf.Tensor, repeat: number): Promise<{ ms: number; kernels: string } | null> {
  const ts: number[] = [];
  let kernels = '';
  for (let r = 0; r < repeat; r++) {
    const info = await tf.time(() => void fn().dispose());
    const extra = (info as unknown as { getExtraProfileInfo?: () => string }).getExtraProfileInfo;
    if (typeof info.kernelMs !== 'number' || info.kernelMs <= 0) return null;
    ts.push(info.kernelMs);
    kernels = extra ? extra() : '';
  }
  ts.sort((a, b) => a - b);
  return { ms: ts[Math.floor(ts.length / 2)]!, kernels };
}

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<{ device: string; reason: string; rows: KernelBenchRow[]; checks: GlaAgreement[] }> {
  const choice = await selectDevice(opts.device ?? 'webgpu', { allowSoftware: opts.allowSoftware ?? false });
  const hardware = choice.backend === 'webgpu' && !(await installDawn())?.software;
  const small = opts.small ?? !hardware; // full sizes only on a hardware GPU
  const repeat = opts.repeat ?? 10;
  const tracker = choice.backend === 'webgpu' ? trackPeakGpuBytes(tf.backend() as unknown as WebGPUBackend) : null;
  const rows: KernelBenchRow[] = [];
  for (const c of benchCases(small)) {
    if (opts.only && !c.op.includes(opts.only)) continue;
    const inputs = c.make();
    for (const impl of c.impls) {
      setForceReference(impl.reference);
      try {
        const fn = () => impl.run(inputs);
        const ms = await time(fn, impl.repeat ?? repeat, impl.inner ?? 30);
        tracker?.reset();
        const once = fn();
        await once.data();
        once.dispose();
        const mib = tracker ? +(tracker.peak() / 2 ** 20).toFixed(1) : undefined;
        const scale = impl.timeScale ?? 1;
        const gpu = tracker ? await gpuTime(fn, impl.repeat ?? repeat) : null;
        const best = (gpu ? gpu.ms : ms) * scale; // throughput from the GPU's own time where known
        rows.push({
          op: c.op,
          shape: c.shape,
          // off WebGPU no custom kernel is registered: both rows run tfjs ops, say so
          impl: choice.backend === 'webgpu' ? impl.name : `${impl.reference ? 'reference forced' : 'op as dispatched (no custom kernel)'} on ${choice.backend}`,
          medianMs: +(ms * scale).toFixed(4),
          ...(gpu ? { gpuMs: +(gpu.ms * scale).toFixed(4), kernels: gpu.kernels.replace(/(\d+\.\d{3})\d+/g, '$1').slice(0, 600) } : {}),
          ...(c.flops ? { gflops: +(c.flops / best / 1e6).toFixed(1) } : {}),
          ...(mib !== undefined ? { peakMiB: mib } : {}),
        });
      } finally {
        setForceReference(false);
      }
    }
    tf.dispose(Object.values(inputs));
  }
  const checks = !opts.only || 'BiGLA forward'.includes(opts.only) ? [await glaAgreement(small)] : [];
  if (!opts.only || 'matmul'.includes(opts.only)) checks.push(await halfAgreement(small ? 256 : 4096));
  return { device: choice.reason, reason: choice.reason, rows, checks };
}

/**
 * precision 'f16' against fp32 on the same random operands: the difference is f16's rounding of the inputs
 * (about 2^-11 relative per element, growing like √K), and says which kernel ran.
 */
async function halfAgreement(n: number): Promise<GlaAgreement> {
  const half = halfMatmulShape();
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 3) as tf.Tensor2D;
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 4) as tf.Tensor2D;
  const f = matmulFast(a, b);
  const h = matmulFast(a, b, { precision: 'f16' });
  const [d, m] = await Promise.all([tf.max(tf.abs(tf.sub(h, f))).data(), tf.max(tf.abs(f)).data()]);
  tf.dispose([a, b, f, h]);
  const how = half ? `subgroup matrices ${half.config.M}x${half.config.N}x${half.config.K}, subgroup ${half.subgroup}` : 'no subgroup matrices: fp32 kernel';
  return { op: `matmul f16 vs fp32 (${how})`, shape: `${n}^3`, maxAbsDiff: d[0]!, maxAbs: m[0]! };
}

export function formatRows(rows: KernelBenchRow[]): string {
  const gpu = (r: KernelBenchRow) => (r.gpuMs === undefined ? '' : `gpu ${r.gpuMs.toFixed(3)} ms`);
  return rows.map((r) => `${r.op.padEnd(22)} ${r.shape.padEnd(26)} ${r.impl.padEnd(52)} ${r.medianMs.toFixed(3).padStart(10)} ms ${gpu(r).padStart(16)} ${String(r.gflops ?? '').padStart(9)} GFLOP/s ${r.peakMiB ?? ''} MiB`).join('\n');
}

export type { BenchCase };

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, small: { type: 'boolean' }, software: { type: 'boolean' }, repeat: { type: 'string' }, only: { type: 'string' } } });
  const res = await runKernelBench({
    ...(values.small ? { small: true } : {}),
    allowSoftware: Boolean(values.software),
    ...(values.repeat ? { repeat: Number(values.repeat) } : {}),
    ...(values.only ? { only: values.only } : {}),
  });
  const checks = res.checks.map((c) => `${c.op} ${c.shape}: max |diff| ${c.maxAbsDiff.toExponential(2)} (max |out| ${c.maxAbs.toFixed(2)})`).join('\n');
  process.stdout.write(values.json ? `${JSON.stringify(res)}\n` : `${res.reason}\n${formatRows(res.rows)}\n${checks}\n`);
  process.exit(0);
}

// run as a script, or as the packed bundle of this file (the CLI bundle passes a command name first)
const script = process.argv[1] ?? '';
if (/gpu_kernels\.ts$/.test(script) || (/bundle\.mjs$/.test(script) && !/^[a-z]/.test(process.argv[2] ?? ''))) await main();
