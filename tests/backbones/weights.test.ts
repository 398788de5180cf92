/**
 * Importers and our model format: the restricted unpickler refuses every global but the tensor
 * rebuilders; .pth/.npz/.safetensors parse to the shapes the official code wrote; save → load round-trips
 * bit-exactly and a tampered weights file is caught by its checksum.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { selectDevice } from '../../kernels/backend.ts';
import { convertOfficialWeights, createBackbone } from '../../backbones/_registry.ts';
import { loadModel, saveModel } from '../../backbones/weights/manifest.ts';
import { loadNpz } from '../../backbones/weights/npz.ts';
import { restrictedUnpickle } from '../../backbones/weights/pickle.ts';
import { loadPth } from '../../backbones/weights/pth.ts';
import { readSafetensors, writeSafetensors } from '../../backbones/weights/safetensors.ts';
import { fixtureBytes } from './_fixtures.ts';

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

describe('restricted unpickler', () => {
  it.each([
    ['os', 'system'],
    ['builtins', 'eval'],
    ['subprocess', 'Popen'],
    ['torch', 'load'],
    ['collections', 'defaultdict'],
  ])('refuses the global %s.%s before calling anything', (mod, name) => {
    // PROTO 2, GLOBAL mod name, ( 'x' t R . — a classic code-execution payload
    const payload = new Uint8Array([0x80, 2, 0x63, ...ascii(`${mod}\n${name}\n`), 0x28, 0x58, 1, 0, 0, 0, 0x78, 0x74, 0x52, 0x2e]);
    expect(() => restrictedUnpickle(payload)).toThrow(/refusing/);
  });
  it('refuses opcodes a state dict never uses (INST, OBJ)', () => {
    expect(() => restrictedUnpickle(new Uint8Array([0x80, 2, 0x69, ...ascii('os\nsystem\n'), 0x2e]))).toThrow(GatedError);
    expect(() => restrictedUnpickle(new Uint8Array([0x80, 2, 0x28, 0x6f, 0x2e]))).toThrow(GatedError);
  });
  it('parses plain containers', () => {
    // {'a': [1, 2.5, True, None]}
    const f = new DataView(new ArrayBuffer(8));
    f.setFloat64(0, 2.5, false);
    const bytes = new Uint8Array([0x80, 2, 0x7d, 0x58, 1, 0, 0, 0, 0x61, 0x5d, 0x28, 0x4b, 1, 0x47, ...new Uint8Array(f.buffer), 0x88, 0x4e, 0x65, 0x73, 0x2e]);
    const out = restrictedUnpickle(bytes) as Map<string, unknown>;
    expect(out.get('a')).toEqual([1, 2.5, true, null]);
  });
});

describe('checkpoint readers', () => {
  it('.pth: official ViG state dict with the PyTorch shapes', () => {
    const sd = loadPth(fixtureBytes('vig_t_mini.pth'));
    expect(sd.get('blocks.0.attn.qkv_proj.weight')!.shape).toEqual([48 + 48, 48]);
    expect(sd.get('patch_embed.proj.0.weight')!.shape).toEqual([24, 3, 9, 9]);
    expect(sd.get('pos_embed')!.shape).toEqual([1, 16, 48]);
  });
  it('.pth: not a zip, or a zip without data.pkl, is refused', () => {
    expect(() => loadPth(new Uint8Array([0x80, 2, 0x7d, 0x2e]))).toThrow(/legacy|zip/);
    expect(() => loadPth(fixtureBytes('maxim_mini.npz'))).toThrow(/data\.pkl/);
  });
  it('.npz (deflated members): Flax paths with the opt/target prefix stripped', () => {
    const sd = loadNpz(fixtureBytes('maxim_mini.npz'));
    expect(sd.get('stage_0_input_conv_0/kernel')!.shape).toEqual([3, 3, 3, 4]);
    expect([...sd.keys()].some((k) => k.startsWith('opt/'))).toBe(false);
  });
  it('safetensors round-trips and refuses a lying header', () => {
    const sd = new Map([['a.b', { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, -6.5]) }]]);
    const bytes = writeSafetensors(sd, { note: 'x' });
    const back = readSafetensors(bytes);
    expect(back.metadata.note).toBe('x');
    expect([...back.tensors.get('a.b')!.data]).toEqual([1, 2, 3, 4, 5, -6.5]);
    const bad = bytes.slice();
    const text = new TextDecoder().decode(bad.subarray(8, 60)).replace('[2,3]', '[3,3]');
    bad.set(new TextEncoder().encode(text), 8);
    expect(() => readSafetensors(bad)).toThrow(GatedError);
  });
  it('a checkpoint of another architecture fails loudly', () => {
    expect(() => convertOfficialWeights('test_vig', fixtureBytes('activator_mini.pth'))).toThrow(/no mapping/);
  });
});

describe('our model format', () => {
  let dir = '';
  beforeAll(async () => {
    await selectDevice('cpu');
    dir = mkdtempSync(join(tmpdir(), 'gv-model-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('save → load gives the same outputs; the manifest carries arch, preprocessing and classes', async () => {
    const model = createBackbone('test_vig', { seed: 7 });
    const manifest = await saveModel(dir, model, {
      arch: 'test_vig', config: { embedDim: 32, depth: 2, numHeads: 2, imgSize: 64, tinyActs: true, numClasses: 10 },
      preprocessing: { inputSize: [64, 64], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, classes: Array.from({ length: 10 }, (_, i) => `c${i}`),
    });
    expect(manifest.weights.sha256).toMatch(/^[0-9a-f]{64}$/);
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const a = await (model.forward(x) as tf.Tensor).data();
    const { manifest: m2, model: loaded } = await loadModel(dir);
    expect(m2.classes[3]).toBe('c3');
    expect(m2.family).toBe('vig');
    const b = await (loaded.forward(x) as tf.Tensor).data();
    expect([...b]).toEqual([...a]);
    model.dispose();
    loaded.dispose();
  });

  it('a tampered weights file or a foreign manifest is refused', async () => {
    const w = join(dir, 'weights.safetensors');
    const bytes = readFileSync(w);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    writeFileSync(w, bytes);
    await expect(loadModel(dir)).rejects.toThrow(/checksum/);
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'other' }));
    await expect(loadModel(dir)).rejects.toThrow(/not a valid gatedvision model manifest/);
  });
});

describe('parameter store', () => {
  it('building and disposing a model frees every byte it allocated', async () => {
    await selectDevice('cpu');
    const before = tf.memory().numBytes;
    const model = createBackbone('test_vig_h', { seed: 2 });
    expect(tf.memory().numBytes).toBeGreaterThan(before);
    model.dispose();
    expect(tf.memory().numBytes).toBe(before);
  });
});
