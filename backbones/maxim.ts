/**
 * MAXIM: Multi-Axis MLP for Image Processing (CVPR 2022, arXiv 2201.02973; google-research/maxim,
 * checkpoints `checkpoint.npz` with Flax paths under `opt/target/`). A multi-stage, multi-scale UNet whose
 * blocks are multi-axis gated MLPs (local block gMLP + global dilated grid gMLP), RCAB channel attention,
 * cross-gating blocks on skips and between stages, and supervised attention modules (SAM) between stages.
 * NHWC, float32. Flax conventions are kept exactly: LayerNorm ε 1e-6, tanh-GELU, 'SAME' convs, antialiased
 * bilinear resize for the ×½/×¼ UpSampleRatio paths, half-pixel nearest for the input pyramid, and the
 * Flax ConvTranspose kernel (correlation with the lhs-dilated input: tap 1−a feeds output 2i+a).
 *
 * Parameter names are the Flax paths ('/'-joined), so importing an official checkpoint is a prefix strip.
 * H and W must be multiples of `inputMultiple(config)` (64 for the released sizes); pad (reflect) outside.
 * See architectures.md §3.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../core/errors.ts';
import { blockPartition, blockUnpartition, gridPartition, gridUnpartition } from '../kernels/multi_axis/op.ts';
import { normal, ones, Param, ParamStore, ScopedStore, zeros } from './_params.ts';
import type { Backbone, FeatureInfo } from './_types.ts';
import { geluTanh, layerNorm, localAvgPool } from './layers/ops.ts';
import { jaxLinearMatrix, resizeSeparable } from './layers/resize.ts';
import type { StateDict } from './weights/tensors.ts';

export interface MaximConfig {
  features: number;
  depth: number;
  numStages: number;
  numGroups: number;
  numBottleneckBlocks: number;
  numSupervisionScales: number;
  highResStages: number;
  blockSizeHr: [number, number];
  gridSizeHr: [number, number];
  blockSizeLr: [number, number];
  gridSizeLr: [number, number];
  blockGmlpFactor: number;
  gridGmlpFactor: number;
  inputProjFactor: number;
  channelsReduction: number;
  lreluSlope: number;
  numOutputs: number;
}

export const MAXIM_DEFAULTS: MaximConfig = {
  features: 32, depth: 3, numStages: 3, numGroups: 2, numBottleneckBlocks: 2, numSupervisionScales: 3, highResStages: 2,
  blockSizeHr: [16, 16], gridSizeHr: [16, 16], blockSizeLr: [8, 8], gridSizeLr: [8, 8],
  blockGmlpFactor: 2, gridGmlpFactor: 2, inputProjFactor: 2, channelsReduction: 4, lreluSlope: 0.2, numOutputs: 3,
};

const EPS = 1e-6;
const W_INIT = normal(0.02);

/** The side multiple every level's blocks and grids need. */
export function inputMultiple(c: MaximConfig): number {
  const lcm = (a: number, b: number): number => (a * b) / gcd(a, b);
  let m = 1;
  for (let i = 0; i < c.depth; i++) {
    const [b, g] = sizesAt(c, i);
    m = lcm(m, 2 ** i * lcm(lcm(b[0], b[1]), lcm(g[0], g[1])));
  }
  return lcm(m, 2 ** c.depth * lcm(c.blockSizeLr[0], c.blockSizeLr[1]));
}

type P = Param;
interface Dense { k: P; b: P }
interface Ln { s: P; b: P }

// ------------------------------------------------------------------ parameter declarations (Flax names)

function dense(s: ScopedStore, name: string, i: number, o: number, biasInit = zeros): Dense {
  return { k: s.add(`${name}/kernel`, [i, o], W_INIT), b: s.add(`${name}/bias`, [o], biasInit) };
}
function conv(s: ScopedStore, name: string, kh: number, i: number, o: number): Dense {
  return { k: s.add(`${name}/kernel`, [kh, kh, i, o], normal(Math.sqrt(1 / (kh * kh * i)))), b: s.add(`${name}/bias`, [o], zeros) };
}
function ln(s: ScopedStore, name: string, c: number): Ln {
  return { s: s.add(`${name}/scale`, [c], ones), b: s.add(`${name}/bias`, [c], zeros) };
}

interface GmlpAxis { ln: Ln; inProj: Dense; gateLn: Ln; gate: Dense; outProj: Dense }
interface Mab { lnIn: Ln; inProj: Dense; grid: GmlpAxis; block: GmlpAxis; outProj: Dense; gridSize: [number, number]; blockSize: [number, number] }
interface Rcab { ln: Ln; conv1: Dense; conv2: Dense; ca1: Dense; ca2: Dense }
interface Rdcab { ln: Ln; mlp1: Dense; mlp2: Dense; ca1: Dense; ca2: Dense }
interface Gsgw { lnIn: Ln; inProj: Dense; du: Dense; dv: Dense; outProj: Dense; gridSize: [number, number]; blockSize: [number, number] }
interface Cgb { up?: Dense; convX: Dense; convY: Dense; lnX: Ln; inX: Dense; gx: Gsgw; lnY: Ln; inY: Dense; gy: Gsgw; outY: Dense; outX: Dense }
interface EncBlock { conv0: Dense; groups: { mab: Mab; rcab: Rcab }[]; cgb?: Cgb; down?: Dense }
interface Bottleneck { inProj: Dense; groups: { mab: Mab; rdcab: Rdcab }[] }
interface Sam { c0: Dense; c1: Dense; c2: Dense }

function gmlpAxis(s: ScopedStore, name: string, unit: string, c: number, factor: number, n: number): GmlpAxis {
  const t = s.scope(name);
  return { ln: ln(t, 'LayerNorm', c), inProj: dense(t, 'in_project', c, c * factor), gateLn: ln(t.scope(unit), 'intermediate_layernorm', (c * factor) / 2), gate: dense(t.scope(unit), 'Dense_0', n, n), outProj: dense(t, 'out_project', (c * factor) / 2, c) };
}

function mab(s: ScopedStore, name: string, c: number, cfg: MaximConfig, blockSize: [number, number], gridSize: [number, number]): Mab {
  const t = s.scope(name);
  const half = (c * cfg.inputProjFactor) / 2;
  return {
    lnIn: ln(t, 'LayerNorm_in', c),
    inProj: dense(t, 'in_project', c, c * cfg.inputProjFactor),
    grid: gmlpAxis(t, 'GridGmlpLayer', 'GridGatingUnit', half, cfg.gridGmlpFactor, gridSize[0] * gridSize[1]),
    block: gmlpAxis(t, 'BlockGmlpLayer', 'BlockGatingUnit', half, cfg.blockGmlpFactor, blockSize[0] * blockSize[1]),
    outProj: dense(t, 'out_project', c * cfg.inputProjFactor, c),
    gridSize, blockSize,
  };
}

function caLayer(t: ScopedStore, c: number, r: number): [Dense, Dense] {
  const ca = t.scope('channel_attention');
  return [conv(ca, 'Conv_0', 1, c, Math.floor(c / r)), conv(ca, 'Conv_1', 1, Math.floor(c / r), c)];
}

function rcab(s: ScopedStore, name: string, c: number, r: number): Rcab {
  const t = s.scope(name);
  const [ca1, ca2] = caLayer(t, c, r);
  return { ln: ln(t, 'LayerNorm', c), conv1: conv(t, 'conv1', 3, c, c), conv2: conv(t, 'conv2', 3, c, c), ca1, ca2 };
}

function rdcab(s: ScopedStore, name: string, c: number, r: number): Rdcab {
  const t = s.scope(name);
  const [ca1, ca2] = caLayer(t, c, r);
  return { ln: ln(t, 'LayerNorm', c), mlp1: dense(t.scope('channel_mixing'), 'Dense_0', c, c), mlp2: dense(t.scope('channel_mixing'), 'Dense_1', c, c), ca1, ca2 };
}

function gsgw(s: ScopedStore, name: string, c: number, cfg: MaximConfig, blockSize: [number, number], gridSize: [number, number]): Gsgw {
  const t = s.scope(name);
  const G = gridSize[0] * gridSize[1];
  const Pn = blockSize[0] * blockSize[1];
  return {
    lnIn: ln(t, 'LayerNorm_in', c), inProj: dense(t, 'in_project', c, c * cfg.inputProjFactor),
    du: dense(t, 'Dense_0', G, G, ones), dv: dense(t, 'Dense_1', Pn, Pn, ones),
    outProj: dense(t, 'out_project', c * cfg.inputProjFactor, c), gridSize, blockSize,
  };
}

function cgb(s: ScopedStore, name: string, cx: number, cy: number, f: number, cfg: MaximConfig, blockSize: [number, number], gridSize: [number, number], upsampleY: boolean): Cgb {
  const t = s.scope(name);
  const out: Cgb = {
    convX: conv(t, 'Conv_0', 1, cx, f), convY: conv(t, 'Conv_1', 1, upsampleY ? f : cy, f),
    lnX: ln(t, 'LayerNorm_x', f), inX: dense(t, 'in_project_x', f, f), gx: gsgw(t, 'SplitHeadMultiAxisGating_x', f, cfg, blockSize, gridSize),
    lnY: ln(t, 'LayerNorm_y', f), inY: dense(t, 'in_project_y', f, f), gy: gsgw(t, 'SplitHeadMultiAxisGating_y', f, cfg, blockSize, gridSize),
    outY: dense(t, 'out_project_y', f, f), outX: dense(t, 'out_project_x', f, f),
  };
  if (upsampleY) out.up = { k: t.add('ConvTranspose_0/kernel', [2, 2, cy, f], W_INIT), b: t.add('ConvTranspose_0/bias', [f], zeros) };
  return out;
}

function encBlock(t: ScopedStore, cin: number, f: number, cfg: MaximConfig, blockSize: [number, number], gridSize: [number, number], crossGating: boolean, downsample: boolean): EncBlock {
  const groups = Array.from({ length: cfg.numGroups }, (_, i) => ({
    mab: mab(t, `SplitHeadMultiAxisGmlpLayer_${i}`, f, cfg, blockSize, gridSize),
    rcab: rcab(t, `channel_attention_block_1${i}`, f, cfg.channelsReduction),
  }));
  const out: EncBlock = { conv0: conv(t, 'Conv_0', 1, cin, f), groups };
  if (crossGating) out.cgb = cgb(t, 'cross_gating_block', f, f, f, cfg, blockSize, gridSize, false);
  if (downsample) out.down = conv(t, 'Conv_1', 4, f, f);
  return out;
}

// ------------------------------------------------------------------ maths

function lnApply(x: tf.Tensor, p: Ln): tf.Tensor {
  return layerNorm(x, p.s, p.b, EPS);
}
function denseApply(x: tf.Tensor, d: Dense): tf.Tensor {
  return tf.tidy(() => {
    const shape = x.shape;
    const i = shape[shape.length - 1]!;
    const y = tf.add(tf.matMul(tf.reshape(x, [-1, i]), d.k.v as tf.Tensor2D), d.b.v);
    return tf.reshape(y, [...shape.slice(0, -1), d.k.shape[1]!]);
  });
}
function convApply(x: tf.Tensor4D, d: Dense, stride = 1): tf.Tensor4D {
  return tf.tidy(() => tf.add(tf.conv2d(x, d.k.v as tf.Tensor4D, stride, 'same'), d.b.v) as tf.Tensor4D);
}
/** Flax ConvTranspose 2×2/s2/SAME: out[2i+a] = Σ x[i]·K[1−a] — TF's transposed conv with the kernel flipped. */
function convTApply(x: tf.Tensor4D, d: Dense): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, H, W] = x.shape;
    const k = tf.transpose(tf.reverse(d.k.v, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D; // [kh, kw, out, in]
    const o = d.k.shape[3]!;
    return tf.add(tf.conv2dTranspose(x, k, [B, 2 * H, 2 * W, o], 2, 'same'), d.b.v) as tf.Tensor4D;
  });
}
/** Dense over axis 1 (G) or 2 (P) of [n, G, P, c]. */
function denseOnAxis(x: tf.Tensor4D, d: Dense, axis: 1 | 2): tf.Tensor4D {
  return tf.tidy(() => {
    const perm = axis === 1 ? [0, 2, 3, 1] : [0, 1, 3, 2];
    const t = tf.transpose(x, perm);
    const y = denseApply(t, d);
    return tf.transpose(y, axis === 1 ? [0, 3, 1, 2] : [0, 1, 3, 2]) as tf.Tensor4D;
  });
}

function gmlpApply(x: tf.Tensor4D, p: GmlpAxis, mode: 'grid' | 'block', size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const [, H, W] = x.shape;
    const blocks = mode === 'grid' ? gridPartition(x, size) : blockPartition(x, size); // [n, G, P, c]
    let y = geluTanh(denseApply(lnApply(blocks, p.ln), p.inProj)) as tf.Tensor4D;
    const [u, v] = tf.split(y, 2, 3) as tf.Tensor4D[];
    const g = denseOnAxis(lnApply(v!, p.gateLn) as tf.Tensor4D, p.gate, mode === 'grid' ? 1 : 2);
    y = tf.mul(u!, tf.add(g, 1));
    const out = tf.add(blocks, denseApply(y, p.outProj)) as tf.Tensor4D;
    return mode === 'grid' ? gridUnpartition(out, size, [H, W]) : blockUnpartition(out, size, [H, W]);
  });
}

function mabApply(x: tf.Tensor4D, p: Mab): tf.Tensor4D {
  return tf.tidy(() => {
    const y = geluTanh(denseApply(lnApply(x, p.lnIn), p.inProj)) as tf.Tensor4D;
    const [u, v] = tf.split(y, 2, 3) as tf.Tensor4D[];
    const cat = tf.concat([gmlpApply(u!, p.grid, 'grid', p.gridSize), gmlpApply(v!, p.block, 'block', p.blockSize)], 3);
    return tf.add(x, denseApply(cat, p.outProj)) as tf.Tensor4D;
  });
}

/**
 * Set while a forward pass runs with TLC local pooling: the window (training size) and the input size, so each
 * level scales the window to its own resolution. The forward pass is synchronous, so one pass owns it.
 */
let localPooling: { window: [number, number]; input: [number, number] } | null = null;

function caApply(x: tf.Tensor4D, a: Dense, b: Dense): tf.Tensor4D {
  return tf.tidy(() => {
    const lp = localPooling;
    const win = (i: 0 | 1) => Math.max(1, Math.round((lp!.window[i] * x.shape[i + 1]!) / lp!.input[i]));
    const y = lp ? localAvgPool(x, [win(0), win(1)]) : (tf.mean(x, [1, 2], true) as tf.Tensor4D);
    return tf.mul(x, tf.sigmoid(convApply(tf.relu(convApply(y, a)), b))) as tf.Tensor4D;
  });
}

function rcabApply(x: tf.Tensor4D, p: Rcab, slope: number): tf.Tensor4D {
  return tf.tidy(() => {
    let y = convApply(lnApply(x, p.ln) as tf.Tensor4D, p.conv1);
    y = convApply(tf.leakyRelu(y, slope), p.conv2);
    return tf.add(x, caApply(y, p.ca1, p.ca2)) as tf.Tensor4D;
  });
}

function rdcabApply(x: tf.Tensor4D, p: Rdcab): tf.Tensor4D {
  return tf.tidy(() => {
    const y = denseApply(geluTanh(denseApply(lnApply(x, p.ln), p.mlp1)), p.mlp2) as tf.Tensor4D;
    return tf.add(x, caApply(y, p.ca1, p.ca2)) as tf.Tensor4D;
  });
}

function gsgwApply(x: tf.Tensor4D, p: Gsgw): tf.Tensor4D {
  return tf.tidy(() => {
    const [, H, W] = x.shape;
    const y = geluTanh(denseApply(lnApply(x, p.lnIn), p.inProj)) as tf.Tensor4D;
    const [u, v] = tf.split(y, 2, 3) as tf.Tensor4D[];
    const gu = gridUnpartition(denseOnAxis(gridPartition(u!, p.gridSize), p.du, 1), p.gridSize, [H, W]);
    const gv = blockUnpartition(denseOnAxis(blockPartition(v!, p.blockSize), p.dv, 2), p.blockSize, [H, W]);
    return denseApply(tf.concat([gu, gv], 3), p.outProj) as tf.Tensor4D;
  });
}

function cgbApply(x: tf.Tensor4D, y: tf.Tensor4D, p: Cgb): [tf.Tensor4D, tf.Tensor4D] {
  return tf.tidy(() => {
    let yy = p.up ? convTApply(y, p.up) : y;
    const x0 = convApply(x, p.convX);
    yy = convApply(yy, p.convY);
    const y0 = yy;
    const xa = geluTanh(denseApply(lnApply(x0, p.lnX), p.inX)) as tf.Tensor4D;
    const gx = gsgwApply(xa, p.gx);
    const ya = geluTanh(denseApply(lnApply(yy, p.lnY), p.inY)) as tf.Tensor4D;
    const gy = gsgwApply(ya, p.gy);
    const yOut = tf.add(denseApply(tf.mul(ya, gx), p.outY), y0) as tf.Tensor4D;
    const xOut = tf.add(tf.add(denseApply(tf.mul(xa, gy), p.outX), yOut), x0) as tf.Tensor4D;
    return [xOut, yOut];
  });
}

function encApply(x: tf.Tensor4D, skip: tf.Tensor4D | null, encDec: tf.Tensor4D | null, p: EncBlock, slope: number): { down: tf.Tensor4D | null; out: tf.Tensor4D } {
  const out: tf.Tensor4D = tf.tidy(() => {
    let t = convApply(skip ? (tf.concat([x, skip], 3) as tf.Tensor4D) : x, p.conv0);
    const long = t;
    for (const g of p.groups) t = rcabApply(mabApply(t, g.mab), g.rcab, slope);
    t = tf.add(t, long) as tf.Tensor4D;
    if (p.cgb && encDec) t = cgbApply(t, encDec, p.cgb)[0];
    return t;
  });
  const down = p.down ? convApply(out, p.down, 2) : null;
  return { down, out };
}

function samApply(x: tf.Tensor4D, img: tf.Tensor4D, p: Sam): [tf.Tensor4D, tf.Tensor4D] {
  return tf.tidy(() => {
    const x1 = convApply(x, p.c0);
    const image = tf.add(convApply(x, p.c1), img) as tf.Tensor4D;
    const x2 = tf.sigmoid(convApply(image, p.c2));
    return [tf.add(tf.mul(x1, x2), x) as tf.Tensor4D, image];
  });
}

/** jax.image.resize(method='nearest') for integer-or-not ratios: source ⌊(j + ½)·in/out⌋. */
function nearestJax(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, H, W] = x.shape;
    const idx = (n: number, o: number) => tf.tensor1d(Array.from({ length: o }, (_, j) => Math.min(n - 1, Math.floor(((j + 0.5) * n) / o))), 'int32');
    return tf.gather(tf.gather(x, idx(H, h), 1), idx(W, w), 2) as tf.Tensor4D;
  });
}

// ------------------------------------------------------------------ model

interface Stage {
  inputConvs: Dense[];
  inputFuse: Cgb[];
  encoders: EncBlock[];
  bottlenecks: Bottleneck[];
  skipCgbs: Cgb[]; // index by level i
  decoders: { up: Dense; block: EncBlock }[]; // index by level i
  sams: Sam[];
  outputConvs: Dense[];
  upSkip: Dense[][]; // [level i][j]
  upDec: Dense[][];
}

export class MaximModel implements Backbone {
  readonly arch = 'maxim';
  readonly featureInfo: readonly FeatureInfo[];
  readonly #stages: Stage[] = [];
  /**
   * TLC: channel attention pools over this window (the training crop size, in input pixels) instead of the
   * whole image. Off (null) by default, which is the official model exactly.
   */
  localPooling: [number, number] | null = null;

  forwardKey(): string {
    return this.localPooling ? `local-pooling ${this.localPooling.join('x')}` : '';
  }

  constructor(
    readonly config: MaximConfig,
    readonly params: ParamStore,
  ) {
    const c = config;
    if (c.numSupervisionScales > c.depth) throw new GatedError('config', `numSupervisionScales (${c.numSupervisionScales}) cannot exceed depth (${c.depth})`);
    if (c.features < c.channelsReduction) throw new GatedError('config', `features (${c.features}) must be at least channelsReduction (${c.channelsReduction})`);
    const root = new RootScope(params, '', '/');
    const top = (name: string) => root.scope(name);
    const F = (i: number) => 2 ** i * c.features;
    let upCount = 0;
    for (let s = 0; s < c.numStages; s++) {
      const st: Stage = { inputConvs: [], inputFuse: [], encoders: [], bottlenecks: [], skipCgbs: [], decoders: [], sams: [], outputConvs: [], upSkip: [], upDec: [] };
      for (let i = 0; i < c.numSupervisionScales; i++) {
        st.inputConvs.push(conv(root, `stage_${s}_input_conv_${i}`, 3, 3, F(i)));
        if (s > 0) {
          const [b, g] = sizesAt(c, i);
          st.inputFuse.push(cgb(root, `stage_${s}_input_fuse_sam_${i}`, F(i), F(i), F(i), c, b, g, false));
        }
      }
      for (let i = 0; i < c.depth; i++) {
        const [b, g] = sizesAt(c, i);
        const cin = (i === 0 ? F(0) : F(i - 1)) + (i < c.numSupervisionScales ? F(i) : 0);
        st.encoders.push(encBlock(top(`stage_${s}_encoder_block_${i}`), cin, F(i), c, b, g, s > 0, true));
      }
      for (let k = 0; k < c.numBottleneckBlocks; k++) {
        const t = top(`stage_${s}_global_block_${k}`);
        const f = F(c.depth - 1);
        st.bottlenecks.push({
          inProj: conv(t, 'input_proj', 1, f, f),
          groups: Array.from({ length: c.numGroups }, (_, i) => ({ mab: mab(t, `SplitHeadMultiAxisGmlpLayer_${i}`, f, c, c.blockSizeLr, c.blockSizeLr), rdcab: rdcab(t, `channel_attention_block_1_${i}`, f, c.channelsReduction) })),
        });
      }
      for (let i = c.depth - 1; i >= 0; i--) {
        st.upSkip[i] = Array.from({ length: c.depth }, (_, j) => conv(top(`UpSampleRatio_${upCount++}`), 'Conv_0', 1, F(j), F(i)));
        const [b, g] = sizesAt(c, i);
        const cy = i === c.depth - 1 ? F(c.depth - 1) : F(i + 1);
        st.skipCgbs[i] = cgb(root, `stage_${s}_cross_gating_block_${i}`, c.depth * F(i), cy, F(i), c, b, g, true);
      }
      for (let i = c.depth - 1; i >= 0; i--) {
        st.upDec[i] = Array.from({ length: c.depth }, (_, j) => conv(top(`UpSampleRatio_${upCount++}`), 'Conv_0', 1, F(c.depth - 1 - j), F(i)));
        const [b, g] = sizesAt(c, i);
        const t = top(`stage_${s}_decoder_block_${i}`);
        const cin = i === c.depth - 1 ? F(c.depth - 1) : F(i + 1);
        st.decoders[i] = {
          up: { k: t.add('ConvTranspose_0/kernel', [2, 2, cin, F(i)], W_INIT), b: t.add('ConvTranspose_0/bias', [F(i)], zeros) },
          block: encBlock(t.scope('UNetEncoderBlock_0'), F(i) + c.depth * F(i), F(i), c, b, g, false, false),
        };
        if (i < c.numSupervisionScales) {
          if (s < c.numStages - 1) {
            const sm = top(`stage_${s}_supervised_attention_module_${i}`);
            st.sams[i] = { c0: conv(sm, 'Conv_0', 3, F(i), F(i)), c1: conv(sm, 'Conv_1', 3, F(i), c.numOutputs), c2: conv(sm, 'Conv_2', 3, c.numOutputs, F(i)) };
          } else {
            st.outputConvs[i] = conv(root, `stage_${s}_output_conv_${i}`, 3, F(i), c.numOutputs);
          }
        }
      }
      this.#stages.push(st);
    }
    this.featureInfo = Array.from({ length: c.depth }, (_, i) => ({ name: `stage_${c.numStages - 1}_decoder_block_${i}`, channels: F(i), reduction: 2 ** i }));
  }

  /** All outputs: [stage][scale], scales from coarsest to full; each is a residual prediction added to the input. */
  forwardStages(x: tf.Tensor4D): tf.Tensor4D[][] {
    return this.#run(x).outputs;
  }

  /** The restored image: the last stage's full-resolution output. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    const { outputs, decoder } = this.#run(x);
    const last = outputs[outputs.length - 1]!;
    const out = last[last.length - 1]!;
    tf.dispose([...outputs.flat().filter((t) => t !== out), ...decoder]);
    return out;
  }

  /** The last stage's decoder features, full resolution first (channels F·2^i, stride 2^i). */
  forwardFeatures(x: tf.Tensor4D): tf.Tensor4D[] {
    const { outputs, decoder } = this.#run(x);
    tf.dispose(outputs.flat());
    return decoder;
  }

  dispose(): void {
    this.params.dispose();
  }

  #run(x: tf.Tensor4D): { outputs: tf.Tensor4D[][]; decoder: tf.Tensor4D[] } {
    const [, H, W] = x.shape;
    localPooling = this.localPooling ? { window: this.localPooling, input: [H, W] } : null;
    try {
      return this.#runStages(x);
    } finally {
      localPooling = null;
    }
  }

  #runStages(x: tf.Tensor4D): { outputs: tf.Tensor4D[][]; decoder: tf.Tensor4D[] } {
    const c = this.config;
    const m = inputMultiple(c);
    const [, H, W] = x.shape;
    if (H % m || W % m) throw new GatedError('shape', `MAXIM input ${H}x${W} must be a multiple of ${m} on each side (pad with reflection, then crop)`);
    const outputsAll: tf.Tensor4D[][] = [];
    let decoderLast: tf.Tensor4D[] = [];
    tf.tidy(() => {
      const shortcuts = [x];
      for (let i = 1; i < c.numSupervisionScales; i++) shortcuts.push(nearestJax(x, Math.floor(H / 2 ** i), Math.floor(W / 2 ** i)));
      let samFeatures: tf.Tensor4D[] = [];
      let encsPrev: tf.Tensor4D[] = [];
      let decsPrev: tf.Tensor4D[] = [];
      for (let s = 0; s < c.numStages; s++) {
        const st = this.#stages[s]!;
        const xScales: tf.Tensor4D[] = [];
        for (let i = 0; i < c.numSupervisionScales; i++) {
          let xs = convApply(shortcuts[i]!, st.inputConvs[i]!);
          if (s > 0) xs = cgbApply(xs, samFeatures.pop()!, st.inputFuse[i]!)[0];
          xScales.push(xs);
        }
        const encs: tf.Tensor4D[] = [];
        let t = xScales[0]!;
        for (let i = 0; i < c.depth; i++) {
          const encDec = s > 0 ? (tf.add(encsPrev.pop()!, decsPrev.pop()!) as tf.Tensor4D) : null;
          const r = encApply(t, i < c.numSupervisionScales ? xScales[i]! : null, encDec, st.encoders[i]!, c.lreluSlope);
          t = r.down!;
          encs.push(r.out);
        }
        for (const b of st.bottlenecks) t = this.#bottleneck(t, b);
        let global = t;
        const skips: tf.Tensor4D[] = [];
        for (let i = c.depth - 1; i >= 0; i--) {
          const signal = tf.concat(encs.map((e, j) => this.#upsample(e, 2 ** (j - i), st.upSkip[i]![j]!)), 3) as tf.Tensor4D;
          const [k, g] = cgbApply(signal, global, st.skipCgbs[i]!);
          skips.push(k);
          global = g;
        }
        const outputs: tf.Tensor4D[] = [];
        const decs: tf.Tensor4D[] = [];
        const sams: tf.Tensor4D[] = [];
        for (let i = c.depth - 1; i >= 0; i--) {
          const signal = tf.concat(skips.map((k, j) => this.#upsample(k, 2 ** (c.depth - j - 1 - i), st.upDec[i]![j]!)), 3) as tf.Tensor4D;
          const d = st.decoders[i]!;
          t = encApply(convTApply(t, d.up), signal, null, d.block, c.lreluSlope).out;
          decs.push(t);
          if (i < c.numSupervisionScales) {
            if (s < c.numStages - 1) {
              const [f, out] = samApply(t, shortcuts[i]!, st.sams[i]!);
              outputs.push(out);
              sams.push(f);
            } else {
              outputs.push(tf.add(convApply(t, st.outputConvs[i]!), shortcuts[i]!) as tf.Tensor4D);
            }
          }
        }
        encsPrev = encs.slice().reverse();
        decsPrev = decs;
        samFeatures = sams;
        outputsAll.push(outputs.map((o) => tf.keep(o)));
        if (s === c.numStages - 1) decoderLast = decs.slice().reverse().map((d) => tf.keep(d));
      }
    });
    return { outputs: outputsAll, decoder: decoderLast };
  }

  #bottleneck(x: tf.Tensor4D, b: Bottleneck): tf.Tensor4D {
    return tf.tidy(() => {
      let t = convApply(x, b.inProj);
      const long = t;
      for (const g of b.groups) t = rdcabApply(mabApply(t, g.mab), g.rdcab);
      return tf.add(t, long) as tf.Tensor4D;
    });
  }

  #upsample(x: tf.Tensor4D, ratio: number, p: Dense): tf.Tensor4D {
    return tf.tidy(() => {
      const [, H, W] = x.shape;
      const h = Math.floor(H * ratio);
      const w = Math.floor(W * ratio);
      const r = h === H && w === W ? x : resizeSeparable(x, jaxLinearMatrix(H, h), jaxLinearMatrix(W, w));
      return convApply(r, p);
    });
  }
}

/** google-research/maxim checkpoint (npz already parsed, `opt/target/` stripped) → our names: the same paths. */
export function convertMaximCheckpoint(official: StateDict): StateDict {
  const out: StateDict = new Map();
  for (const [k, v] of official) out.set(k.startsWith('opt/target/') ? k.slice('opt/target/'.length) : k, v);
  return out;
}

// --- internal ---

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function sizesAt(c: MaximConfig, i: number): [[number, number], [number, number]] {
  // the released code uses block_size_lr where the low-res grid size is needed (same value there)
  return i < c.highResStages ? [c.blockSizeHr, c.gridSizeHr] : [c.blockSizeLr, c.blockSizeLr];
}

/** The model's top scope: `scope(name)` starts a Flax path, `add(name)` declares a top-level parameter. */
class RootScope extends ScopedStore {
  override add(name: string, shape: readonly number[], init: Parameters<ParamStore['add']>[2]): Param {
    return this.root.add(name, shape, init);
  }
  override scope(prefix: string): ScopedStore {
    return new ScopedStore(this.root, prefix, '/');
  }
}
