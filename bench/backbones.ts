/**
 * Backbone benchmark: ViG-T (BiGLA, linear in tokens) against DeiT-T (softmax attention, quadratic) at
 * growing resolutions, one image per call, random weights (speed and memory do not depend on them).
 * Median wall ms per image over repeats (each call awaited: the output is read back); peak memory is the
 * most bytes of tensors alive during one call (the engine's byte count, sampled at every allocation; what
 * tf.profile reports, without its per-kernel log, which overflows the stack at ViG-T 1024²), and on WebGPU
 * also the peak of GPU buffers in use (tfjs-webgpu's buffer manager). Failed sizes are reported as such.
 *
 *   npx tsx bench/backbones.ts --device wasm --sizes 224,512 --repeat 3
 *   npx tsx bench/backbones.ts --models her_seg --sizes 1024 --train     (one training step: forward + all gradients)
 *   ... --models her_seg --sizes 1024 --step [--recompute]               (a whole step: forward in training mode, the
 *       model's loss, all gradients, the AdamW update; --recompute: activation recomputation on). With --train or
 *       --step a second table splits the peak: weights, optimizer moments, what the forward pass leaves for the
 *       backward pass, and the rest (the backward pass itself). --free-backward: the gradients of --train/--step
 *       by a backward pass that frees each op's saved tensors and each intermediate gradient as it goes
 *   ... --flags WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=200                     (tfjs environment flags for the run)
 *   ... --gpu-time     (webgpu: also the GPU time of one forward, timestamp queries summed over its dispatches)
 *   ... --replay       (webgpu forward rows: the warm-up records the forward, timed calls replay it)
 *   ... --replay-shares (with --replay: each program left out of the replay in turn; its cost is the difference)
 *   Forward rows run inference-only models (ViG: packed projections on the device, their source parameters in
 *   host memory); --keep-params keeps both. --consume-input: each call uploads its own input and the model frees
 *   it after its stem (models that cannot, free it after the call).
 *   ... --device webgpu --software --dry-run   (memory only, on SwiftShader: nothing compiled or run; same peaks)
 *   bash ../shared/gpu/pack.sh bench/backbones.ts && bash .gpu/run.sh --device webgpu --sizes 224,512,1024,2048   (GPU host)
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseArgs } from 'node:util';
import { selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { releaseIdleBuffers, trackPeakGpuBytes, type WebGPUBackend, type WebGPUProgram } from '../kernels/_webgpu_internal.ts';
import { captureReplay, type Replay } from '../kernels/webgpu_replay.ts';
import { countParams, createBackbone } from '../backbones/_registry.ts';
import { herSegLoss } from '../backbones/her_seg_loss.ts';
import { variableGradsFreeing } from '../backbones/layers/recompute.ts';
import { AdamW, ADAMW_DEFAULTS } from '../pipelines/train/optim.ts';

export interface BackboneBenchRow {
  model: string;
  size: number;
  tokens: number;
  medianMs: number | null;
  peakTensorMiB: number | null;
  peakGpuMiB: number | null;
  /**
   * Forward rows: FNV-1a of the output's bytes (random weights and input are seeded), so two builds or settings
   * (e.g. GATEDVISION_DEFERRED_RELEASE=1) can be checked for bit-identical outputs on the same device (--json).
   */
  outputFnv?: string;
  /** WebGPU: peak of all buffers tfjs's manager holds, its pool of idle ones included. */
  peakGpuAllocatedMiB?: number | null;
  /** --gpu-time: median GPU time of one forward (timestamp queries summed over its dispatches). */
  gpuMs?: number | null;
  /** --replay: device memory the replay owns (its intermediates, constants and input; weights are read in place). */
  replayMiB?: number;
  /** --replay: dispatches per forward. */
  dispatches?: number;
  /** --replay-shares: per program, its dispatches and the median ms of a replay that leaves them out. */
  replayShares?: Record<string, { dispatches: number; msWithout: number }>;
  error?: string;
  /** --train / --step: the parts of the peak (MiB of live tensors). */
  memory?: StepMemory;
}

export interface StepMemory {
  weights: number;
  /** AdamW's two moments (--step only). */
  optimizer: number;
  /** Live at the end of the forward pass (loss included), beyond weights, moments and the input. */
  keptForBackward: number;
  /** The peak beyond all of the above: what the backward pass and the update add. */
  backward: number;
}

export interface BackboneBenchOptions {
  device: DeviceRequest;
  sizes: number[];
  models: string[];
  repeat: number;
  allowSoftware?: boolean;
  train?: boolean;
  step?: boolean;
  recompute?: boolean;
  freeBackward?: boolean;
  gpuTime?: boolean;
  flags?: Record<string, number | boolean>;
  /** Forward rows: keep the parameters that packed weights were built from on the device (no `inferenceOnly`). */
  keepParams?: boolean;
  /** Forward rows: each call gets its own input (uploaded per call, in the time) and the model frees it after its stem. */
  consumeInput?: boolean;
  /** WebGPU: count memory without compiling or running any program (`dryRunWebgpu`); times are then meaningless. */
  dryRun?: boolean;
  /** WebGPU forward rows: the warm-up records the forward, the timed calls replay it (kernels/webgpu_replay.ts). */
  replay?: boolean;
  /** With replay: time the replay again leaving out each program in turn (what each costs inside the replay). */
  replayShares?: boolean;
}

export async function benchBackbones(opts: BackboneBenchOptions): Promise<{ device: string; rows: BackboneBenchRow[] }> {
  const choice = await selectDevice(opts.device, { allowSoftware: opts.allowSoftware ?? false });
  for (const [k, v] of Object.entries(opts.flags ?? {})) tf.env().set(k, v);
  const tracker = choice.backend === 'webgpu' ? trackPeakGpuBytes(tf.backend() as unknown as WebGPUBackend) : null;
  const undoDryRun = opts.dryRun && choice.backend === 'webgpu' ? dryRunWebgpu(tf.backend() as unknown as WebGPUBackend) : null;
  const tensors = trackPeakTensorBytes();
  const rows: BackboneBenchRow[] = [];
  const forwardOnly = !opts.train && !opts.step;
  for (const name of opts.models) {
    const model = createBackbone(name, { seed: 0, ...(opts.recompute ? { overrides: { recompute: true } } : {}) });
    // an inference-only model keeps one copy of each weight on the device (ViG: packed projections, not their sources)
    const prunable = model as Partial<{ inferenceOnly: () => Promise<void> }>;
    if (forwardOnly && !opts.keepParams && prunable.inferenceOnly) await prunable.inferenceOnly();
    for (const size of opts.sizes) {
      const tokens = name.startsWith('vig') ? (Math.floor((Math.floor((size - 7) / 8) + 1 - 1) / 2) + 1) ** 2 : (size / 16) ** 2;
      const x = tf.randomNormal([1, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      // --consume-input: the host copy stays, each forward uploads its own input and the model frees it
      const hostX = forwardOnly && opts.consumeInput ? await x.data() : null;
      if (hostX) x.dispose();
      let replay: Replay | null = null;
      const useReplay = forwardOnly && opts.replay === true && choice.backend === 'webgpu' && !opts.dryRun;
      const forward = () => {
        const input = hostX ? (tf.tensor(hostX, [1, size, size, 3]) as tf.Tensor4D) : x;
        let y: tf.Tensor;
        if (useReplay && replay) y = replay.run(input)[0]!;
        else if (useReplay) {
          const rec = captureReplay((t) => model.forward(t as tf.Tensor4D) as tf.Tensor, input);
          replay = rec.replay;
          y = rec.outputs[0]!;
        } else y = model.forward(input, hostX ? { consumeInput: true } : {}) as tf.Tensor;
        if (hostX && !input.isDisposed) input.dispose(); // a model that cannot free it early
        return y;
      };
      // --train: one forward + backward over every parameter (the memory a training step needs per image)
      // (variables() would bring offloaded parameters back to the device: only where gradients are taken)
      const vars = forwardOnly ? [] : model.params.variables();
      const weightBytes = vars.reduce((n, v) => n + v.size * 4, 0);
      // --step: a fixed random binary mask as the target of the model's own loss (HER-Seg's; the mean elsewhere)
      const target = opts.step && model.arch === 'her_seg' ? tf.tidy(() => tf.cast(tf.greater(tf.randomUniform([1, size, size, 1], 0, 1, 'float32', 2), 0.5), 'float32')) : null;
      const opt = opts.step ? new AdamW({ ...ADAMW_DEFAULTS }) : null;
      let endOfForward = 0;
      const grad = opts.freeBackward ? variableGradsFreeing : tf.variableGrads;
      const step = async () => {
        const { value, grads } = grad(() => {
          const out = model.forward(x, { training: true, seed: 0 }) as tf.Tensor;
          const loss = target ? herSegLoss(out, target, { recompute: opts.recompute ?? false }) : (tf.mean(out) as tf.Scalar);
          endOfForward = tf.memory().numBytes;
          return loss;
        }, vars);
        await value.data();
        opt!.apply(new Map(vars.filter((v) => grads[v.name]).map((v) => [v, grads[v.name]!])));
        tf.dispose([value, ...Object.values(grads)]);
      };
      let lastOutput: Float32Array | null = null;
      const run = opts.step
        ? step
        : opts.train
        ? async () => {
            const { value, grads } = grad(() => {
              const loss = tf.mean(model.forward(x) as tf.Tensor) as tf.Scalar;
              endOfForward = tf.memory().numBytes;
              return loss;
            }, vars);
            await value.data();
            value.dispose();
            tf.dispose(Object.values(grads));
          }
        : async () => {
            const y = forward();
            lastOutput = (await y.data()) as Float32Array;
            y.dispose();
          };
      try {
        await checked(run); // warm-up: shader compilation, weight upload; a device error fails the size
        releaseIdleBuffers(); // the pool's peak below is what this call needs, not what earlier rows left idle
        tracker?.reset();
        tensors.reset();
        const before = tf.memory().numBytes; // weights, moments (allocated by the warm-up's update), input, target
        await checked(run);
        const outputFnv = lastOutput && !opts.dryRun ? fnv1a(lastOutput as Float32Array) : undefined;
        const gpuPeak = tracker ? tracker.peak() : null;
        const gpuAllocated = tracker ? tracker.peakAllocated() : null;
        const tensorPeak = tensors.peak();
        const optimizerBytes = opt ? 2 * weightBytes : 0;
        const memory: StepMemory | undefined = opts.train || opts.step
          ? { weights: mib(weightBytes), optimizer: mib(optimizerBytes), keptForBackward: mib(endOfForward - before), backward: mib(tensorPeak - endOfForward) }
          : undefined;
        const times: number[] = [];
        for (let r = 0; r < opts.repeat; r++) {
          const t0 = performance.now();
          await run();
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        const gpuMs = opts.gpuTime && forwardOnly && !opts.dryRun ? (replay ? undefined : await forwardGpuMs(forward, opts.repeat)) : undefined;
        const rep = replay as Replay | null;
        const shares: Record<string, { dispatches: number; msWithout: number }> = {};
        if (rep && opts.replayShares) {
          for (const [program, n] of rep.programs()) {
            const ts: number[] = [];
            for (let r = 0; r < opts.repeat; r++) {
              const t0 = performance.now();
              const ys = rep.run(x, new Set([program]));
              await ys[0]!.data();
              tf.dispose(ys);
              ts.push(performance.now() - t0);
            }
            ts.sort((a, b) => a - b);
            shares[program] = { dispatches: n, msWithout: Math.round(ts[Math.floor(ts.length / 2)]! * 100) / 100 };
          }
        }
        const replayInfo = rep ? { replayMiB: round(rep.bytes / 2 ** 20), dispatches: rep.dispatches, ...(opts.replayShares ? { replayShares: shares } : {}) } : {};
        rows.push({ model: name, size, tokens, medianMs: round(times[Math.floor(times.length / 2)]!), peakTensorMiB: round(tensorPeak / 2 ** 20), peakGpuMiB: gpuPeak === null ? null : round(gpuPeak / 2 ** 20), ...(gpuAllocated !== null ? { peakGpuAllocatedMiB: round(gpuAllocated / 2 ** 20) } : {}), ...(outputFnv ? { outputFnv } : {}), ...(gpuMs !== undefined ? { gpuMs } : {}), ...(memory ? { memory } : {}), ...replayInfo });
      } catch (e) {
        rows.push({ model: name, size, tokens, medianMs: null, peakTensorMiB: null, peakGpuMiB: null, error: (e as Error).message.split('\n')[0] });
      }
      (replay as Replay | null)?.destroy();
      x.dispose();
      target?.dispose();
      opt?.dispose();
    }
    model.dispose();
  }
  undoDryRun?.();
  const notes = [
    forwardOnly && !opts.keepParams ? 'inference-only weights (ViG: packed projections without their source parameters)' : '',
    forwardOnly && opts.consumeInput ? 'input uploaded per call and freed by the model after its stem' : '',
    opts.dryRun ? 'dry run: memory only, nothing compiled or run (times meaningless)' : '',
    forwardOnly && opts.replay && choice.backend === 'webgpu' ? 'forward recorded once and replayed (no GPU time: tfjs profiles its own dispatches only)' : '',
  ].filter(Boolean);
  return { device: [choice.reason, ...notes].join('; '), rows };
}

export function markdownTable(rows: BackboneBenchRow[]): string {
  const withGpu = rows.some((r) => r.gpuMs !== undefined);
  const withPool = rows.some((r) => r.peakGpuAllocatedMiB !== undefined);
  const withReplay = rows.some((r) => r.replayMiB !== undefined);
  const head = `| model | params | input | tokens | median ms / image |${withGpu ? ' GPU ms / image |' : ''} peak tensors MiB | peak GPU MiB |${withPool ? ' peak GPU incl. idle pool MiB |' : ''}${withReplay ? ' replay MiB | dispatches |' : ''}\n|---|---|---|---|---|${withGpu ? '---|' : ''}---|---|${withPool ? '---|' : ''}${withReplay ? '---|---|' : ''}`;
  const body = rows.map((r) => `| ${r.model} | ${(countParams(r.model) / 1e6).toFixed(2)}M | ${r.size}² | ${r.tokens} | ${r.medianMs ?? `failed: ${r.error}`} |${withGpu ? ` ${r.gpuMs ?? '-'} |` : ''} ${r.peakTensorMiB ?? '-'} | ${r.peakGpuMiB ?? '-'} |${withPool ? ` ${r.peakGpuAllocatedMiB ?? '-'} |` : ''}${withReplay ? ` ${r.replayMiB ?? '-'} | ${r.dispatches ?? '-'} |` : ''}`);
  const table = [head, ...body].join('\n');
  const split = rows.filter((r) => r.memory);
  if (!split.length) return table;
  const head2 = '| model | input | weights MiB | AdamW moments MiB | kept for the backward pass MiB | backward pass MiB | peak tensors MiB |\n|---|---|---|---|---|---|---|';
  const body2 = split.map((r) => { const m = r.memory!; return `| ${r.model} | ${r.size}² | ${m.weights} | ${m.optimizer} | ${m.keptForBackward} | ${m.backward} | ${r.peakTensorMiB} |`; });
  return [table, '', head2, ...body2].join('\n');
}

// --- internal ---

/**
 * Median GPU time of one forward: tfjs's timestamp-query profiling summed over the call's dispatches (each timed
 * dispatch ends its compute pass, so this is the GPU's work without the host's per-op cost). Null where the
 * device has no timestamp queries.
 */
async function forwardGpuMs(fn: () => tf.Tensor, repeat: number): Promise<number | null> {
  const ts: number[] = [];
  for (let r = 0; r < Math.max(3, repeat); r++) {
    const info = await tf.time(() => void fn().dispose());
    if (typeof info.kernelMs !== 'number' || info.kernelMs <= 0) return null;
    ts.push(info.kernelMs);
    if (r === 0 && process.env.GATEDVISION_BENCH_PROFILE === '1') printProgramTimes(info as unknown as { getExtraProfileInfo?: () => string });
  }
  ts.sort((a, b) => a - b);
  return Math.round(ts[Math.floor(ts.length / 2)]! * 100) / 100;
}

interface ErrorScopes {
  pushErrorScope(filter: 'validation' | 'out-of-memory'): void;
  popErrorScope(): Promise<{ message: string } | null>;
}

/**
 * Runs `f` inside WebGPU error scopes: a validation or out-of-memory error (e.g. a buffer past the binding
 * limit) only logs on the device and leaves garbage in the output, so a timing of that call would be a lie.
 */
async function checked(f: () => Promise<void>): Promise<void> {
  const device = (tf.backend() as unknown as { device?: ErrorScopes }).device;
  if (!device?.pushErrorScope) return f();
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  await f();
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  const e = oom ?? invalid;
  if (e) throw new Error(`WebGPU ${oom ? 'out of memory' : 'validation error'}: ${e.message.split('\n')[0]}`);
}

/** GATEDVISION_BENCH_PROFILE=1: GPU ms and dispatch count per program of one forward, to stderr, largest first. */
function printProgramTimes(info: { getExtraProfileInfo?: () => string }): void {
  const per = new Map<string, { ms: number; n: number }>();
  // tfjs-webgpu gives "Name: ms, Name: ms, ..."
  for (const m of (info.getExtraProfileInfo?.() ?? '').matchAll(/([\w$]+): ([\d.e+-]+)/g)) {
    const [name, ms] = [m[1]!, Number(m[2])];
    const e = per.get(name) ?? { ms: 0, n: 0 };
    per.set(name, { ms: e.ms + ms, n: e.n + 1 });
  }
  const lines = [...per].sort((a, b) => b[1].ms - a[1].ms).map(([name, e]) => `  ${name}: ${e.ms.toFixed(3)} ms in ${e.n} dispatches`);
  process.stderr.write(`GPU time per program:\n${lines.join('\n')}\n`);
}

/**
 * Memory without running: every WebGPU program is given its output buffer, its uniform buffer and its place in the
 * command batch (tfjs's `recordAndSubmit` up to the native calls: queue ownership of its buffers, a submit every
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches), but nothing is compiled or dispatched, so values are garbage.
 * Which buffers exist when depends on shapes only: on SwiftShader this gives the H200's peaks in seconds (ViG-T at
 * 1024², HEAD 4bd632e: 98.0 MiB of tensors and 139.5 MiB of GPU buffers, as measured there). Returns the undo.
 */
export function dryRunWebgpu(backend: WebGPUBackend): () => void {
  interface Queue {
    runWebGPUProgram: (program: WebGPUProgram, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms?: unknown[], output?: tf.TensorInfo) => tf.TensorInfo;
    makeUniforms(u: unknown[]): unknown;
    uploadToGPU(id: object): void;
    commandQueueOwnedIds: WeakSet<object>;
    ensureCommandEncoderReady(): void;
    endComputePassEncoder(): void;
    submitQueue(): void;
    dispatchCountInPass: number;
    makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  }
  const gpu = backend as unknown as Queue;
  const run = gpu.runWebGPUProgram;
  gpu.runWebGPUProgram = function (this: Queue, program, inputs, dtype, uniforms, output) {
    const out = output ?? this.makeTensorInfo(program.outputShape, dtype);
    if (out.shape.reduce((a, b) => a * b, 1) === 0) return run.call(this, program, inputs, dtype, undefined, out);
    this.uploadToGPU(out.dataId);
    for (const i of inputs) this.uploadToGPU(i.dataId);
    // the uniform buffer's size is close enough: tfjs adds shapes and strides (tens of bytes)
    this.makeUniforms([{ type: 'float32', data: [0] }, ...(uniforms ?? [])]);
    for (const i of inputs) this.commandQueueOwnedIds.add(i.dataId);
    this.commandQueueOwnedIds.add(out.dataId);
    this.ensureCommandEncoderReady();
    if (++this.dispatchCountInPass >= (tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number)) {
      this.endComputePassEncoder();
      this.submitQueue();
    }
    return out;
  };
  return () => void (gpu.runWebGPUProgram = run);
}

/** Peak of the engine's live tensor bytes: wraps its allocation hook once; `reset()` starts a new window. */
export function trackPeakTensorBytes(): { reset: () => void; peak: () => number } {
  const engine = tf.engine() as unknown as { state: { numBytes: number }; trackTensor: (...a: unknown[]) => unknown };
  let peak = engine.state.numBytes;
  const track = engine.trackTensor.bind(engine);
  engine.trackTensor = (...a: unknown[]) => {
    const r = track(...a);
    peak = Math.max(peak, engine.state.numBytes);
    return r;
  };
  return { reset: () => void (peak = engine.state.numBytes), peak: () => peak };
}

function fnv1a(values: Float32Array): string {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function mib(bytes: number): number {
  return round(bytes / 2 ** 20);
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

export async function main(args: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      device: { type: 'string', default: 'auto' },
      sizes: { type: 'string', default: '224,512,1024,2048' },
      models: { type: 'string', default: 'vig_t,deit_t' },
      repeat: { type: 'string', default: '3' },
      software: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      train: { type: 'boolean', default: false },
      step: { type: 'boolean', default: false },
      recompute: { type: 'boolean', default: false },
      'free-backward': { type: 'boolean', default: false },
      flags: { type: 'string', default: '' },
      'gpu-time': { type: 'boolean', default: false },
      'keep-params': { type: 'boolean', default: false },
      'consume-input': { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      replay: { type: 'boolean', default: false },
      'replay-shares': { type: 'boolean', default: false },
    },
  });
  const res = await benchBackbones({
    device: values.device as DeviceRequest,
    sizes: values.sizes!.split(',').map(Number),
    models: values.models!.split(','),
    repeat: Number(values.repeat),
    allowSoftware: values.software,
    train: values.train,
    step: values.step,
    recompute: values.recompute,
    freeBackward: values['free-backward'],
    gpuTime: values['gpu-time'],
    keepParams: values['keep-params'],
    consumeInput: values['consume-input'],
    dryRun: values['dry-run'],
    replay: values.replay || values['replay-shares'],
    replayShares: values['replay-shares'],
    flags: Object.fromEntries(values.flags!.split(',').filter(Boolean).map((kv) => { const [k, v] = kv.split('='); return [k!, v === 'true' ? true : v === 'false' ? false : Number(v)]; })),
  });
  process.stdout.write(values.json ? `${JSON.stringify(res)}\n` : `${res.device}\n\n${markdownTable(res.rows)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}` && /backbones\.ts$/.test(process.argv[1] ?? '')) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
