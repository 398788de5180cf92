/**
 * ViG inference memory. On WebGPU (SwiftShader, dry run: every program gets its buffers and its place in the command
 * batch as on a real GPU, none is compiled or run; bench/backbones.ts `dryRunWebgpu`, which reproduces the H200's
 * peaks) the peak of one forward stays within its parts: the weights the device holds, the input, and the largest
 * set of maps one stage needs at once. Inference-only models hold packed projections without their sources; on
 * the CPU the outputs do not change, and training still works after it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dryRunWebgpu, trackPeakTensorBytes } from '../../bench/backbones.ts';
import { createBackbone } from '../../backbones/_registry.ts';
import { ParamStore } from '../../backbones/_params.ts';
import { resolveConfig } from '../../backbones/_registry.ts';
import { glaMixerTuning, vigMlpHidden, vigTokenGrid, VigModel, type VigConfig } from '../../backbones/vig.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { glaBiChunkSize } from '../../kernels/gla/webgpu_bi.ts';
import { pendingRelease, trackPeakGpuBytes, type WebGPUBackend } from '../../kernels/_webgpu_internal.ts';

const F32 = 4;
/** test_vig with a narrow MLP, so the attention half of the block (the packed projection, its heads) is the largest stage. */
const narrowVig = (): VigModel => new VigModel({ ...(resolveConfig('test_vig') as unknown as VigConfig), mlpHidden: 64 }, new ParamStore(true, 0));
const SIZE = 256;

/** Device bytes of what an inference-only ViG keeps: weights that are not packed sources, and the packed ones. */
function keptWeightBytes(c: VigConfig, model: VigModel): number {
  let floats = 0;
  for (const [name, spec] of model.params.specs) if (!model.params.isOffloaded(name)) floats += spec.shape.reduce((a, b) => a * b, 1);
  const K = Math.floor(c.embedDim * c.expandK);
  const P = 4 * K + 2 * c.embedDim;
  floats += c.depth * (c.embedDim * P + P + c.embedDim * 2 * vigMlpHidden(c)); // packed projection + its bias, gated up-projection
  return floats * F32;
}

/**
 * The most bytes one stage of the forward needs beyond weights and input: the stem's three first-stage maps
 * (LayerNorm output, its sigmoid, SiLU); in a block, the block input, the local map L, the packed projection P
 * [N, 4K + 2C], the five heads cut from it and the GLI gate copied out of it; the BiGLA's chunk states beside its
 * output; the MLP's block input, residual sum, hidden map and output.
 */
function stageBytes(c: VigConfig, size: number, chunk: number): number {
  const C = c.embedDim;
  const K = Math.floor(C * c.expandK);
  const h1 = Math.floor((size + 2 - (c.patchSize / 2 + 1)) / (c.patchSize / 2)) + 1;
  const N = vigTokenGrid(size, c.patchSize) ** 2;
  const dk = K / c.numHeads;
  const dv = C / c.numHeads;
  const nC = Math.ceil(N / chunk);
  const states = 2 * c.numHeads * nC * dk * (dv + 1); // per direction and head, one state per chunk (+ γ)
  const stem = 3 * h1 * h1 * (C / 2);
  const projection = N * (C + C + (4 * K + 2 * C) + (4 * K + C) + C);
  const bigla = N * (C + C + (4 * K + C) + C + C) + 4 * states; // ΔS, its segment fold and scan, the states
  const mlp = N * (3 * C + vigMlpHidden(c));
  return Math.max(stem, projection, bigla, mlp) * F32;
}

describe('ViG inference peak on WebGPU (SwiftShader, dry run)', () => {
  let undo: () => void;
  let gpu: WebGPUBackend;
  let gpuPeak: ReturnType<typeof trackPeakGpuBytes>;
  let tensorPeak: ReturnType<typeof trackPeakTensorBytes>;
  beforeAll(async () => {
    await selectDevice('webgpu', { allowSoftware: true });
    gpu = tf.backend() as unknown as WebGPUBackend;
    undo = dryRunWebgpu(gpu);
    gpuPeak = trackPeakGpuBytes(gpu);
    tensorPeak = trackPeakTensorBytes();
  });
  afterAll(async () => {
    undo();
    await selectDevice('cpu');
  });

  /** Device bytes before the call (weights, input) and the peaks of one forward with its read-back. */
  async function measure(model: VigModel, x: tf.Tensor4D): Promise<{ resident: number; gpu: number; tensors: number }> {
    tf.dispose(await model.forward(x).data()); // one-off work (packed weights, uploads) out of the window
    const bm = (gpu as unknown as { bufferManager: { numBytesUsed: number } }).bufferManager;
    const resident = bm.numBytesUsed;
    const tensorsBefore = tf.memory().numBytes;
    gpuPeak.reset();
    tensorPeak.reset();
    const y = model.forward(x);
    await y.data();
    y.dispose();
    return { resident, gpu: gpuPeak.peak() - resident, tensors: tensorPeak.peak() - tensorsBefore };
  }

  it('test_vig at 256²: weights + input + the largest stage, and the GPU buffers no more than the tensors', async () => {
    const model = narrowVig();
    const c = model.config;
    const saved = glaMixerTuning.gateCopyFromBytes;
    glaMixerTuning.gateCopyFromBytes = 0; // as for ViG-T at 1024²: the GLI gate copied out, the projection freed
    try {
      await model.inferenceOnly();
      const x = tf.randomNormal([1, SIZE, SIZE, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const limits = gpu.device.limits;
      const chunk = glaBiChunkSize(c.embedDim * c.expandK / c.numHeads, c.embedDim / c.numHeads, limits.maxComputeWorkgroupStorageSize, Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX));
      expect(chunk).toBeGreaterThan(0);
      const stage = stageBytes(c, SIZE, chunk);
      const slack = 64 * 1024; // uniform buffers of one batch of dispatches, the read-back of the logits
      const m = await measure(model, x);
      // what stays on the device: the packed weights and the rest, not the sources the packed ones came from
      expect(m.resident).toBeLessThanOrEqual(keptWeightBytes(c, model) + x.size * F32 + slack);
      expect(m.gpu).toBeLessThanOrEqual(stage + slack);
      expect(m.tensors).toBeLessThanOrEqual(stage + slack);
      expect(m.gpu).toBeGreaterThan(stage / 2); // the bound is near what a stage needs, not loose by far
      // tfjs's own release (at each submit) holds the buffers of up to 15 dispatches' dead tensors on top
      pendingRelease.immediate = false;
      let deferred: number;
      try {
        deferred = (await measure(model, x)).gpu;
      } finally {
        pendingRelease.immediate = true;
      }
      expect(deferred).toBeGreaterThan(stage + slack);
      x.dispose();
    } finally {
      glaMixerTuning.gateCopyFromBytes = saved;
      model.dispose();
    }
  });
});

describe('inference-only ViG on the CPU', () => {
  beforeAll(async () => {
    await selectDevice('cpu');
  });

  it('holds packed weights without their sources, gives the same outputs, and a consumed input is freed', async () => {
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const plain = createBackbone('test_vig', { seed: 4 });
    const want = await plain.forward(x).data();
    const model = createBackbone('test_vig', { seed: 4 }) as unknown as VigModel;
    const before = tf.memory().numBytes;
    await model.inferenceOnly();
    const c = model.config;
    const I = vigMlpHidden(c);
    const K = Math.floor(c.embedDim * c.expandK);
    const perBlock = c.embedDim * (2 * K + c.embedDim) + c.embedDim * c.gateLowRank + c.gateLowRank * 2 * K + 2 * K + c.embedDim * c.embedDim + c.embedDim + c.embedDim * 2 * I + c.embedDim;
    expect(before - tf.memory().numBytes).toBe(c.depth * perBlock * F32); // qkv, gate pair, gate bias, GLI + bias, MLP up, MLP norm
    expect(model.params.isOffloaded('blocks.0.attn.qkv.kernel')).toBe(true);
    expect(model.params.isOffloaded('blocks.0.attn.out.kernel')).toBe(false);
    const got = await model.forward(x).data();
    expect(Array.from(got)).toEqual(Array.from(want));
    // consumeInput: the model frees its input after the stem (the same output); by default it never does
    const own = tf.clone(x);
    const consumed = await model.forward(own, { consumeInput: true }).data();
    expect(own.isDisposed).toBe(true);
    expect(Array.from(consumed)).toEqual(Array.from(want));
    tf.dispose(model.forward(x));
    expect(x.isDisposed).toBe(false);
    x.dispose();
    plain.dispose();
    model.dispose();
  });

  it('saving, loading and training bring the offloaded parameters back with the same values', async () => {
    const a = createBackbone('test_vig', { seed: 6 }) as unknown as VigModel;
    const b = createBackbone('test_vig', { seed: 6 });
    await a.inferenceOnly();
    const [sa, sb] = [await a.params.export(), await b.params.export()];
    expect([...sa.keys()].sort()).toEqual([...sb.keys()].sort());
    for (const [k, v] of sb) expect(Array.from(sa.get(k)!.data), k).toEqual(Array.from(v.data));
    // a gradient step reaches every parameter, the offloaded ones included (they come back to the device)
    const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const vars = a.params.variables();
    expect(a.params.isOffloaded('blocks.0.attn.qkv.kernel')).toBe(false);
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(a.forward(x))) as tf.Scalar, vars);
    expect(Object.keys(grads).length).toBe(vars.length);
    const qkv = vars.find((v) => v.name.startsWith('blocks.0.attn.qkv.kernel'))!;
    expect(tf.max(tf.abs(grads[qkv.name]!)).dataSync()[0]).toBeGreaterThan(0);
    // and a reassigned source rebuilds the packed projection: the next inference sees the new weight
    const y0 = await a.forward(x).data();
    qkv.assign(tf.mul(qkv, 2));
    const y1 = await a.forward(x).data();
    expect(Array.from(y1)).not.toEqual(Array.from(y0));
    tf.dispose([x, value, ...Object.values(grads)]);
    a.dispose();
    b.dispose();
  });
});
