/**
 * The fused ViG block: the packed projection (q/k/v, both gate directions and the GLI gate in one matmul) is
 * built once for inference and rebuilt when a weight changes; gradients reach every parameter behind it
 * (checked against finite differences); on WebGPU a ViG-T forward at 224² stays under a stated number of
 * kernel calls and GPU dispatches (the count is deterministic; 1051 calls and 590 dispatches before these fusions, 205 and 215 after).
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countKernels } from '../../bench/kernel_count.ts';
import { createBackbone } from '../../backbones/_registry.ts';
import type { Backbone } from '../../backbones/_types.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { maxAbsDiff } from '../_helpers/close.ts';

/** At the official init scale the attention barely moves the logits; weights of order 1 make every check bite. */
function enlargeAttention(model: Backbone, seed: number): void {
  for (const v of model.params.variables()) {
    if (/\.attn\.(dwconv|qkv|gate_down|gate_up|gli|out)\.(kernel|bias)#/.test(v.name)) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.6, 'float32', seed++)));
  }
}

const variable = (model: Backbone, name: string) => model.params.variables().find((v) => v.name.startsWith(`${name}#`))!;

describe('packed projection on cpu', () => {
  beforeAll(async () => {
    await selectDevice('cpu');
  });

  it('is built with the model, reused by every forward, rebuilt when a weight is reassigned, and freed with the model', async () => {
    const before = tf.memory().numTensors;
    const model = createBackbone('test_vig', { seed: 3 });
    enlargeAttention(model, 10);
    const x = tf.randomNormal([1, 104, 120, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const concats = async () => {
      const p = await tf.profile(() => model.forward(x));
      tf.dispose(p.result as tf.Tensor);
      return p.kernels.filter((k) => k.name === 'Concat').length;
    };
    const kept = tf.memory().numTensors;
    expect(await concats()).toBe((await concats()) + 4); // enlargeAttention reassigned both blocks' weights and biases
    expect(tf.memory().numTensors).toBe(kept); // rebuilt in place
    const none = await concats(); // the concatenations the rest of the forward does (position table resize)
    const y1 = model.forward(x);
    expect(tf.memory().numTensors).toBe(kept + 1); // the output only
    const down = variable(model, 'blocks.0.attn.gate_down.kernel');
    tf.tidy(() => down.assign(tf.mul(down, 3)));
    expect(await concats()).toBe(none + 1); // block 0's packed weight again, its bias kept
    expect(await concats()).toBe(none);
    const y2 = model.forward(x);
    expect(await maxAbsDiff(y1, y2)).toBeGreaterThan(1e-2);
    const fresh = createBackbone('test_vig', { seed: 3 });
    enlargeAttention(fresh, 10);
    tf.tidy(() => variable(fresh, 'blocks.0.attn.gate_down.kernel').assign(tf.mul(down, 1)));
    const y3 = fresh.forward(x);
    expect(await maxAbsDiff(y2, y3)).toBeLessThan(1e-6);
    tf.dispose([y1, y2, y3, x]);
    model.dispose();
    fresh.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gradients of the gate, q/k/v and GLI weights equal finite differences', async () => {
    const model = createBackbone('test_vig', { seed: 5 });
    enlargeAttention(model, 20);
    const x = tf.randomNormal([1, 96, 112, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const names = ['blocks.1.attn.gate_down.kernel', 'blocks.1.attn.gate_up.kernel', 'blocks.1.attn.gate_up.bias', 'blocks.0.attn.qkv.kernel', 'blocks.0.attn.gli.bias'];
    const vars = names.map((n) => variable(model, n));
    const loss = () => tf.sum(tf.square(model.forward(x))) as tf.Scalar;
    const { grads } = tf.variableGrads(loss, vars);
    for (const v of vars) {
      const g = await grads[v.name]!.data();
      const dir = tf.randomNormal(v.shape, 0, 1, 'float32', 9);
      const analytic = (await tf.sum(tf.mul(grads[v.name]!, dir)).data())[0]!;
      const orig = v.clone();
      const eps = 1e-2;
      v.assign(tf.add(orig, tf.mul(dir, eps)));
      const up = (await loss().data())[0]!;
      v.assign(tf.sub(orig, tf.mul(dir, eps)));
      const dn = (await loss().data())[0]!;
      v.assign(orig);
      const numeric = (up - dn) / (2 * eps);
      expect(g.some((e) => e !== 0), v.name).toBe(true);
      expect(Math.abs(numeric), `${v.name} moves the loss`).toBeGreaterThan(1e-4);
      expect(Math.abs(analytic - numeric), `${v.name}: ${analytic} vs ${numeric}`).toBeLessThan(2e-2 * Math.abs(numeric));
      tf.dispose([dir, orig]);
    }
    tf.dispose([x, ...Object.values(grads)]);
    model.dispose();
  });
});

describe('kernels per ViG-T forward on WebGPU (SwiftShader)', () => {
  beforeAll(async () => {
    await selectDevice('webgpu', { allowSoftware: true });
  });
  afterAll(async () => {
    await selectDevice('cpu');
  });

  // a dry run: the real WebGPU kernel functions pick and build every program, none is compiled or dispatched
  // (which programs run depends on shapes only; SwiftShader would take minutes to compile and run them all)
  it('ViG-T at 224²: at most 210 kernel calls and 220 GPU dispatches', async () => {
    const model = createBackbone('vig_t', { seed: 0 });
    const x = tf.randomNormal([1, 224, 224, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const c = await countKernels(() => model.forward(x), { dryRun: true });
    expect(c.kernels).toBeLessThanOrEqual(210);
    expect(c.dispatches).toBeLessThanOrEqual(220);
    // the block's fused kernels, once per block (12) or per head group; SiLU(gate)·value inside the MLP's matmul
    expect(c.byKernel.GliMerge).toBe(12);
    expect(c.byKernel.SwigluFused ?? 0).toBe(0);
    expect(c.byKernel.RmsNormFused).toBe(13); // the attention norms and the final one: the MLP's is inside its matmul
    expect(c.byKernel.TokensToHeads).toBe(60);
    expect(c.byKernel.Transpose ?? 0).toBe(0);
    x.dispose();
    model.dispose();
  });
});
