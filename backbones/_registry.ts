/**
 * Named backbone variants (timm-style): one entry per name with its family, architecture config and input
 * constraints; weights metadata lives apart (manifest.ts). `dropPath` is each variant's official
 * stochastic-depth rate (training only; 0 for the tiny variants). `createBackbone(name)` builds a model with
 * random weights; `countParams(name)` counts without allocating; `convertOfficialWeights` maps an
 * official checkpoint onto our names. Tiny `test_*` variants keep tests fast.
 */
import { GatedError } from '../core/errors.ts';
import { ParamStore } from './_params.ts';
import type { Backbone, InputConstraint } from './_types.ts';
import { ACTIVATOR_DEFAULTS, ActivatorModel, convertActivatorCheckpoint, type ActivatorConfig } from './activator.ts';
import { convertDeitCheckpoint, DEIT_DEFAULTS, DeitModel, type DeitConfig } from './deit.ts';
import { convertVigCheckpoint, VIG_DEFAULTS, VigModel, type VigConfig } from './vig.ts';
import { convertHerSegCheckpoint, HER_SEG_DEFAULTS, HerSegModel, type HerSegConfig } from './her_seg.ts';
import { convertMaximCheckpoint, inputMultiple, MAXIM_DEFAULTS, MaximModel, type MaximConfig } from './maxim.ts';
import { convertVigHCheckpoint, VIG_H_DEFAULTS, VigHModel, type VigHConfig } from './vig_h.ts';
import { loadNpz } from './weights/npz.ts';
import { loadPth } from './weights/pth.ts';
import { readSafetensors } from './weights/safetensors.ts';
import type { StateDict } from './weights/tensors.ts';

export type Family = 'vig' | 'vig_h' | 'her_seg' | 'maxim' | 'deit' | 'activator';

export interface BackboneEntry {
  family: Family;
  config: Record<string, unknown>;
  input: InputConstraint;
  tiny: boolean;
  description: string;
  /** Parameter count stated in architectures.md (full-size variants), in millions. */
  specParamsM?: number;
}

interface FamilySpec<C> {
  defaults: C;
  build: (config: C, store: ParamStore) => Backbone;
  convert: (official: StateDict, config: C) => StateDict;
  /** The official checkpoint format. */
  format: 'pth' | 'npz';
}

const FAMILIES: { [F in Family]: FamilySpec<any> } = {
  vig: { defaults: VIG_DEFAULTS, build: (c: VigConfig, s) => new VigModel(c, s), convert: convertVigCheckpoint, format: 'pth' } satisfies FamilySpec<VigConfig>,
  vig_h: { defaults: VIG_H_DEFAULTS, build: (c: VigHConfig, s) => new VigHModel(c, s), convert: convertVigHCheckpoint, format: 'pth' } satisfies FamilySpec<VigHConfig>,
  her_seg: { defaults: HER_SEG_DEFAULTS, build: (c: HerSegConfig, s) => new HerSegModel(c, s), convert: convertHerSegCheckpoint, format: 'pth' } satisfies FamilySpec<HerSegConfig>,
  maxim: { defaults: MAXIM_DEFAULTS, build: (c: MaximConfig, s) => new MaximModel(c, s), convert: convertMaximCheckpoint, format: 'npz' } satisfies FamilySpec<MaximConfig>,
  deit: { defaults: DEIT_DEFAULTS, build: (c: DeitConfig, s) => new DeitModel(c, s), convert: convertDeitCheckpoint, format: 'pth' } satisfies FamilySpec<DeitConfig>,
  activator: { defaults: ACTIVATOR_DEFAULTS, build: (c: ActivatorConfig, s) => new ActivatorModel(c, s), convert: convertActivatorCheckpoint, format: 'pth' } satisfies FamilySpec<ActivatorConfig>,
};

const anySize = (native: number, note: string): InputConstraint => ({ multipleOf: 1, minSize: 32, nativeSize: native, note });
const patchMultiple = (p: number, native: number, note: string): InputConstraint => ({ multipleOf: p, minSize: p, nativeSize: native, note });

const VIG_H_INPUT: InputConstraint = { multipleOf: 32, minSize: 32, nativeSize: 224, note: 'any size (no position table); multiples of 32 keep the 4 stages exact' };
const MAXIM_INPUT: InputConstraint = { multipleOf: 64, minSize: 64, nativeSize: 256, note: 'multiple of 64 (reflect-pad, then crop)' };
const TEST_MAXIM: Partial<MaximConfig> = { features: 4, numStages: 2, blockSizeHr: [4, 4], gridSizeHr: [4, 4], blockSizeLr: [2, 2], gridSizeLr: [2, 2] };
const VIG_INPUT = anySize(224, 'any size ≥ 32; the 14×14 position table is bicubic-resized to the token grid');

export const VARIANTS: Record<string, BackboneEntry> = {
  vig_t: { family: 'vig', config: { embedDim: 192, numHeads: 3, tinyActs: true, dropPath: 0 }, input: VIG_INPUT, tiny: false, description: 'ViG-T (plain, BiGLA + GLI)', specParamsM: 5.83 },
  vig_s: { family: 'vig', config: { embedDim: 384, numHeads: 6, dropPath: 0.2 }, input: VIG_INPUT, tiny: false, description: 'ViG-S (plain)', specParamsM: 22.62 },
  vig_b: { family: 'vig', config: { embedDim: 768, numHeads: 12, dropPath: 0.5 }, input: VIG_INPUT, tiny: false, description: 'ViG-B (plain)', specParamsM: 89.02 },
  test_vig: { family: 'vig', config: { embedDim: 32, depth: 2, numHeads: 2, imgSize: 64, tinyActs: true, numClasses: 10 }, input: anySize(64, 'any size ≥ 32'), tiny: true, description: 'tiny ViG for tests' },
  vig_h_t: { family: 'vig_h', config: { dropPath: 0.2 }, input: VIG_H_INPUT, tiny: false, description: 'ViG-H-T (hierarchical, strides 4-32)', specParamsM: 28.60 },
  vig_h_s: { family: 'vig_h', config: { depths: [2, 2, 17, 2], dropPath: 0.3 }, input: VIG_H_INPUT, tiny: false, description: 'ViG-H-S (hierarchical)', specParamsM: 50.05 },
  vig_h_b: { family: 'vig_h', config: { dims: [128, 256, 512, 1024], depths: [2, 2, 17, 2], numHeads: [4, 8, 16, 32], dropPath: 0.6 }, input: VIG_H_INPUT, tiny: false, description: 'ViG-H-B (hierarchical)', specParamsM: 88.90 },
  test_vig_h: { family: 'vig_h', config: { dims: [16, 24, 32, 32], depths: [1, 1, 1, 1], numHeads: [1, 2, 2, 2], numClasses: 10 }, input: { multipleOf: 32, minSize: 32, nativeSize: 64, note: 'any size; multiples of 32 keep every stage exact' }, tiny: true, description: 'tiny ViG-H for tests' },
  her_seg: { family: 'her_seg', config: { dropPath: 0.1 }, input: patchMultiple(16, 1024, 'multiple of 16 (released at 1024x1024; RoPE and decoder PE are built per grid)'), tiny: false, description: 'HER-Seg: CE-Encoder (LGViT) + neck + ME-Decoder, binary mask logits', specParamsM: 3.53 },
  test_her_seg: { family: 'her_seg', config: { embedDim: 16, depths: [1, 1, 1], numHeads: [1, 2, 4], decoderDim: 32, decoderDepth: 1, decoderHeads: 2, decoderMlpDim: 32 }, input: patchMultiple(16, 64, 'multiple of 16'), tiny: true, description: 'tiny HER-Seg for tests' },
  maxim_s1: { family: 'maxim', config: { features: 32, numStages: 1 }, input: MAXIM_INPUT, tiny: false, description: 'MAXIM-1S restoration (3 supervision scales)', specParamsM: 6.14 },
  maxim_s2: { family: 'maxim', config: { features: 32, numStages: 2 }, input: MAXIM_INPUT, tiny: false, description: 'MAXIM-2S (deraining, dehazing, enhancement checkpoints)', specParamsM: 14.18 },
  maxim_s3: { family: 'maxim', config: { features: 32, numStages: 3 }, input: MAXIM_INPUT, tiny: false, description: 'MAXIM-3S (denoising, deblurring checkpoints)', specParamsM: 22.21 },
  maxim_m1: { family: 'maxim', config: { features: 64, numStages: 1 }, input: MAXIM_INPUT, tiny: false, description: 'MAXIM-1M', specParamsM: 19.46 },
  maxim_m2: { family: 'maxim', config: { features: 64, numStages: 2 }, input: MAXIM_INPUT, tiny: false, description: 'MAXIM-2M', specParamsM: 43.23 },
  maxim_m3: { family: 'maxim', config: { features: 64, numStages: 3 }, input: MAXIM_INPUT, tiny: false, description: 'MAXIM-3M', specParamsM: 66.99 },
  test_maxim: { family: 'maxim', config: TEST_MAXIM, input: { multipleOf: inputMultiple({ ...MAXIM_DEFAULTS, ...TEST_MAXIM }), minSize: 16, nativeSize: 32, note: 'multiple of 16' }, tiny: true, description: 'tiny MAXIM for tests' },
  deit_t: { family: 'deit', config: { embedDim: 192, numHeads: 3, dropPath: 0.1 }, input: patchMultiple(16, 224, 'multiple of 16; position table bicubic-resized'), tiny: false, description: 'DeiT-Ti softmax baseline', specParamsM: 5.72 },
  deit_s: { family: 'deit', config: { embedDim: 384, numHeads: 6, dropPath: 0.1 }, input: patchMultiple(16, 224, 'multiple of 16; position table bicubic-resized'), tiny: false, description: 'DeiT-S softmax baseline', specParamsM: 22.05 },
  test_deit: { family: 'deit', config: { embedDim: 32, depth: 2, numHeads: 2, patchSize: 8, imgSize: 32, numClasses: 10 }, input: patchMultiple(8, 32, 'multiple of 8'), tiny: true, description: 'tiny DeiT for tests' },
  activator: { family: 'activator', config: {}, input: patchMultiple(4, 32, 'multiple of 4 (no position embedding)'), tiny: false, description: 'Activator (GLU unit + FFN), CIFAR configuration', specParamsM: 2.650890 },
  activator_glu_only: { family: 'activator', config: { glaOnly: true }, input: patchMultiple(4, 32, 'multiple of 4 (no position embedding)'), tiny: false, description: 'Activator without the second MLP', specParamsM: 1.599242 },
  test_activator: { family: 'activator', config: { dModel: 32, dFfn: 64, numLayers: 2, imgSize: 16 }, input: patchMultiple(4, 16, 'multiple of 4'), tiny: true, description: 'tiny Activator for tests' },
};

export function listBackbones(pattern?: RegExp): string[] {
  const names = Object.keys(VARIANTS).sort();
  return pattern ? names.filter((n) => pattern.test(n)) : names;
}

export function getVariant(name: string): BackboneEntry {
  const e = VARIANTS[name];
  if (!e) {
    const near = listBackbones().filter((n) => n.split('_')[0] === name.split('_')[0]);
    throw new GatedError('unknown_name', `unknown backbone '${name}'${near.length ? `; did you mean ${near.join(', ')}?` : ''} (known: ${listBackbones().join(', ')})`);
  }
  return e;
}

/** The full config of a variant, with overrides (unknown keys are errors). */
export function resolveConfig(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const e = getVariant(name);
  const defaults = FAMILIES[e.family].defaults as Record<string, unknown>;
  for (const k of Object.keys(overrides)) if (!(k in defaults)) throw new GatedError('config', `'${k}' is not an option of ${e.family} (options: ${Object.keys(defaults).join(', ')})`);
  return { ...defaults, ...e.config, ...overrides };
}

export interface CreateOptions {
  overrides?: Record<string, unknown>;
  /** Our-named weights to load (e.g. from convertOfficialWeights or a saved model). */
  weights?: StateDict;
  seed?: number;
}

export function createBackbone(name: string, opts: CreateOptions = {}): Backbone {
  const e = getVariant(name);
  const config = resolveConfig(name, opts.overrides);
  const model = FAMILIES[e.family].build(config, new ParamStore(true, opts.seed ?? 0));
  if (opts.weights) {
    try {
      model.params.load(opts.weights);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }
  return model;
}

/** Builds by family and explicit config (saved models carry their config). */
export function createFromConfig(family: Family, config: Record<string, unknown>, weights?: StateDict): Backbone {
  const spec = FAMILIES[family];
  if (!spec) throw new GatedError('unknown_name', `unknown backbone family '${family}'`);
  const defaults = spec.defaults as Record<string, unknown>;
  for (const k of Object.keys(config)) if (!(k in defaults)) throw new GatedError('config', `'${k}' is not an option of ${family} (options: ${Object.keys(defaults).join(', ')})`);
  const model = spec.build({ ...(spec.defaults as object), ...config }, new ParamStore(true));
  if (weights) model.params.load(weights);
  return model;
}

/** Parameter count of a variant, without allocating weights. */
export function countParams(name: string, overrides: Record<string, unknown> = {}): number {
  const e = getVariant(name);
  const store = new ParamStore(false);
  FAMILIES[e.family].build(resolveConfig(name, overrides), store);
  return store.count();
}

/**
 * Reads an official checkpoint (.pth state dict, .safetensors, or Flax .npz) and maps it onto our names
 * for the given variant (its config decides shapes, not the file).
 */
export function convertOfficialWeights(name: string, bytes: Uint8Array, opts: { format?: 'pth' | 'safetensors' | 'npz'; overrides?: Record<string, unknown> } = {}): StateDict {
  const e = getVariant(name);
  const format = opts.format ?? sniffFormat(bytes);
  const official = format === 'pth' ? loadPth(bytes) : format === 'npz' ? loadNpz(bytes) : readSafetensors(bytes).tensors;
  return FAMILIES[e.family].convert(official, resolveConfig(name, opts.overrides));
}

/** The official checkpoint format of a variant's family ('pth' state dict or Flax 'npz'). */
export function checkpointFormat(name: string): 'pth' | 'npz' {
  return FAMILIES[getVariant(name).family].format;
}

export function familyOf(name: string): Family {
  return getVariant(name).family;
}

// --- internal ---

function sniffFormat(b: Uint8Array): 'pth' | 'safetensors' | 'npz' {
  if (b[0] === 0x50 && b[1] === 0x4b) {
    // both are zips: a torch checkpoint holds data.pkl, an npz holds .npy members
    const text = new TextDecoder('latin1').decode(b.subarray(0, Math.min(b.length, 4096)));
    return text.includes('data.pkl') ? 'pth' : 'npz';
  }
  if (b.length >= 9 && b[8] === 0x7b) return 'safetensors';
  throw new GatedError('unsupported_format', 'weights file is neither a PyTorch zip checkpoint, a .npz nor a .safetensors file');
}
