/**
 * GPU kernel benchmark on WebGPU (Dawn): our kernels beside stock tfjs-webgpu composites, same shapes.
 * Medians over repeats after warm-up, each timed to completion (await data of a 1-element reduction).
 *
 *   bash ../shared/gpu/pack.sh bench/gpu_kernels.ts && bash .gpu/run.sh --json   (on the GPU host)
 *   npx tsx bench/gpu_kernels.ts --software --small                              (here, SwiftShader)
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerGradient, registerKernel } from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { dwconvWebgpuConfig } from '../kernels/dwconv/webgpu.ts';
import { depthwiseConv2dFused } from '../kernels/dwconv/op.ts';
import { glaWebgpuConfig } from '../kernels/gla/webgpu.ts';
import { glaGradConfig } from '../kernels/gla/grad.ts';
import { biGatedLinearAttention } from '../kernels/gla/op.ts';
import { glaReference } from '../kernels/gla/reference.ts';
import { installDawn, useSwiftShader } from '../kernels/webgpu_node.ts';

export interface KernelBenchRow {
  op: string;
  shape: string;
  impl: string;
  medianMs: number;
  gflops?: number;
}

/**
 * Median ms per call: `inner` calls are queued back to back and the last is awaited, so the GPU's own time
 * is measured rather than the read-back round trip of each call.
 */
async function time(fn: () => tf.Tensor, repeat: number, inner = 10): Promise<number> {
  const run = async (n: number) => {
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < n; i++) outs.push(fn());
    const s = tf.sum(outs[outs.length - 1]!);
    await s.data();
    tf.dispose([s, ...outs]);
  };
  await run(2); // warm-up: shader compilation and buffer pools
  const ts: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    await run(inner);
    ts.push((performance.now() - t0) / inner);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

export async function runKernelBench(opts: { small?: boolean; repeat?: number } = {}): Promise<{ device: string; rows: KernelBenchRow[] }> {
  const adapter = await installDawn();
  if (!adapter) throw new Error('no WebGPU adapter');
  await import('@tensorflow/tfjs-backend-webgpu');
  await tf.setBackend('webgpu');
  registerKernel(glaWebgpuConfig);
  registerKernel(dwconvWebgpuConfig);
  registerGradient(glaGradConfig);
  const repeat = opts.repeat ?? 20;
  const rows: KernelBenchRow[] = [];
  const add = (op: string, shape: string, impl: string, ms: number, flops?: number) =>
    rows.push({ op, shape, impl, medianMs: +ms.toFixed(4), ...(flops ? { gflops: +(flops / ms / 1e6).toFixed(1) } : {}) });

  // depthwise 3x3 + bias (ViG locality injection size at 256²)
  {
    const [H, W, C] = opts.small ? [32, 32, 16] : [256, 256, 192];
    const x = tf.randomNormal([1, H, W, C]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, C, 1]) as tf.Tensor4D;
    const b = tf.randomNormal([C]) as tf.Tensor1D;
    const shape = `1x${H}x${W}x${C}, 3x3`;
    const flops = 2 * 9 * H * W * C;
    add('depthwise3x3+bias', shape, 'ours (fused WGSL)', await time(() => depthwiseConv2dFused(x, w, { bias: b }), repeat), flops);
    add('depthwise3x3+bias', shape, 'tfjs-webgpu composite', await time(() => tf.add(tf.depthwiseConv2d(x, w, 1, 'same'), b), repeat), flops);
    tf.dispose([x, w, b]);
  }
  // bidirectional GLA forward (ViG at high resolution)
  {
    const [B, Hh, N, Dk, Dv] = opts.small ? [1, 1, 256, 32, 64] : [1, 3, 65536, 32, 64];
    const q = tf.randomNormal([B, Hh, N, Dk]) as tf.Tensor4D;
    const k = tf.randomNormal([B, Hh, N, Dk]) as tf.Tensor4D;
    const v = tf.randomNormal([B, Hh, N, Dv]) as tf.Tensor4D;
    const gf = tf.neg(tf.randomUniform([B, Hh, N, Dk], 0, 0.1)) as tf.Tensor4D;
    const gb = tf.neg(tf.randomUniform([B, Hh, N, Dk], 0, 0.1)) as tf.Tensor4D;
    const shape = `B${B} H${Hh} N${N} dk${Dk} dv${Dv}`;
    const flops = 2 * 2 * 3 * B * Hh * N * Dk * Dv; // state update + readout, both directions
    add('BiGLA forward', shape, 'ours (chunked WGSL, 4 passes per direction)', await time(() => biGatedLinearAttention(q, k, v, gf, gb), Math.min(repeat, 10), 5), flops);
    if (N <= 4096 || opts.small) {
      const zero = tf.zeros([B, Hh, N, Dv]) as tf.Tensor4D;
      add('BiGLA forward', shape, 'tfjs-webgpu composite (chunked reference)', await time(() => tf.tidy(() => glaReference(q, k, v, gb, glaReference(q, k, v, gf, zero, false, 0.1), true, 0.1)), 3, 1), flops);
      zero.dispose();
    } else {
      // the composite reference loops over N/16 chunks from JS: time a 4096-token slice and scale (noted in the table)
      const n = 4096;
      const sl = (t: tf.Tensor4D) => tf.slice(t, [0, 0, 0, 0], [B, Hh, n, t.shape[3]]) as tf.Tensor4D;
      const [qs, ks, vs, fs, bs] = [q, k, v, gf, gb].map(sl) as tf.Tensor4D[];
      const zero = tf.zeros([B, Hh, n, Dv]) as tf.Tensor4D;
      const ms = await time(() => tf.tidy(() => glaReference(qs!, ks!, vs!, bs!, glaReference(qs!, ks!, vs!, fs!, zero, false, 0.1), true, 0.1)), 2, 1);
      add('BiGLA forward', shape, `tfjs-webgpu composite (chunked reference, 4096-token time x ${N / n})`, ms * (N / n), flops);
      tf.dispose([qs!, ks!, vs!, fs!, bs!, zero]);
    }
    tf.dispose([q, k, v, gf, gb]);
  }
  // fp32 matmul: stock tfjs-webgpu (our own subgroup-matrix matmul is not written yet)
  {
    const n = opts.small ? 256 : 4096;
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    add('matmul fp32', `${n}^3`, 'tfjs-webgpu stock', await time(() => tf.matMul(a, b), repeat), 2 * n ** 3);
    tf.dispose([a, b]);
  }
  return { device: `${adapter.vendor} ${adapter.device || adapter.description}`, rows };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, small: { type: 'boolean' }, software: { type: 'boolean' }, repeat: { type: 'string' } } });
  if (values.software) useSwiftShader();
  const res = await runKernelBench({ small: Boolean(values.small), ...(values.repeat ? { repeat: Number(values.repeat) } : {}) });
  if (values.json) process.stdout.write(`${JSON.stringify(res)}\n`);
  else for (const r of res.rows) process.stdout.write(`${r.op.padEnd(20)} ${r.shape.padEnd(28)} ${r.impl.padEnd(60)} ${r.medianMs.toFixed(3)} ms ${r.gflops ?? ''}\n`);
  process.exit(0);
}

if (process.argv[1] && /gpu_kernels|bundle\.mjs$/.test(process.argv[1])) await main();
