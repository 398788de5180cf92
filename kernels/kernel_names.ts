/** Names, inputs and attributes of our custom kernels (one stanza each, as tfjs-core's kernel_names.ts). */

export const GatedLinearAttention = 'GatedLinearAttention';
/** q, k, logDecay: [B, H, T, Dk]; v and acc: [B, H, T, Dv]. Output: acc + scale·scan(q, k, v, logDecay). */
export type GlaInputs = { q: unknown; k: unknown; v: unknown; logDecay: unknown; acc: unknown };
export interface GlaAttrs {
  reverse: boolean;
  scale: number;
}

export const DepthwiseConv2dFused = 'DepthwiseConv2dFused';
/** x: [N, H, W, C]; filter: [kh, kw, C, 1]; bias: [C]; gate: [N, outH, outW, C]. bias and gate absent (or dummies while a tape records) when unused. */
export type DwInputs = { x: unknown; filter: unknown; bias: unknown; gate: unknown };
export type Activation = 'linear' | 'relu' | 'silu' | 'gelu' | 'gelu_tanh' | 'sigmoid';
export interface DwAttrs {
  activation: Activation;
  hasBias: boolean;
  hasGate: boolean;
  padding: 'same' | 'valid';
  strides: [number, number];
}

export const LinearAttention = 'LinearAttention';
/** q, k, qRot, kRot: [B, H, N, Dk]; v: [B, H, N, Dv]. Output [B, H, N, Dv]. */
export type LinearAttentionInputs = { q: unknown; k: unknown; qRot: unknown; kRot: unknown; v: unknown };
export interface LinearAttentionAttrs {
  eps: number;
}

export const MultiAxisPartition = 'MultiAxisPartition';
/** x: [N, H, W, C] ⇄ [N, gh·gw, fh·fw, C]; `inverse` goes from blocks back to the image. */
export type MultiAxisInputs = { x: unknown };
export interface MultiAxisAttrs {
  gh: number;
  gw: number;
  fh: number;
  fw: number;
  inverse: boolean;
}

export const MatMulFast = 'MatMulFast';
/** a: [batch, M, K] (or [batch, K, M] transposed), b: [batch, K, N] (or [batch, N, K]); batch broadcasts from 1. */
export type MatMulFastInputs = { a: unknown; b: unknown };
export interface MatMulFastAttrs {
  transposeA: boolean;
  transposeB: boolean;
  precision: 'fp32' | 'f16';
}

export const RmsNormFused = 'RmsNormFused';
/** x: [..., C]; gamma: [C]. Output x · rsqrt(mean(x², last axis) + eps) · gamma, the shape of x. */
export type RmsNormInputs = { x: unknown; gamma: unknown };
export interface RmsNormAttrs {
  eps: number;
}

export const LayerNormFused = 'LayerNormFused';
/** x: [..., C]; gamma, beta: [C]. Output (x - mean) · rsqrt(var + eps) · gamma + beta over the last axis. */
export type LayerNormInputs = { x: unknown; gamma: unknown; beta: unknown };
export interface LayerNormAttrs {
  eps: number;
}

export const GeluFused = 'GeluFused';
/** x: any shape, float32. Output GELU(x), exact (erf) or tanh-approximated. */
export type GeluInputs = { x: unknown };
export interface GeluAttrs {
  approximate: 'erf' | 'tanh';
}

export const LinearFused = 'LinearFused';
/** a: [..., K]; w: [K, N]; bias: [N] and residual: [..., N] (absent, or a 1-element dummy while a tape records). Output act(a·w + bias) + residual, [..., N]. */
export type LinearFusedInputs = { a: unknown; w: unknown; bias: unknown; residual: unknown };
export interface LinearFusedAttrs {
  activation: Activation;
  hasBias: boolean;
  hasResidual: boolean;
  /** w's columns in tiles of 128 (64 gates, then their 64 values); output SiLU(gate)·value (+ residual), [..., N/2]. */
  gated: boolean;
  /** > 0: a's rows are first divided by their root mean square, rsqrt(mean(a²) + rmsNormEps) (RMSNorm's weight folded into w). */
  rmsNormEps: number;
}

export const SwigluFused = 'SwigluFused';
/** u: [..., 2I]. Output SiLU(u[..., :I]) ⊙ u[..., I:], [..., I]. */
export type SwigluInputs = { u: unknown };

export const TokensToHeads = 'TokensToHeads';
/** p: [B, N, P]. Output columns [begin, begin + size) split into heads, [B, heads, N, size/heads]; logSigmoid(·)/logSigmoidScale when that is > 0. */
export type TokensToHeadsInputs = { p: unknown };
export interface TokensToHeadsAttrs {
  begin: number;
  size: number;
  heads: number;
  logSigmoidScale: number;
}

export const GliMerge = 'GliMerge';
/**
 * o: [B, h, N, dv]; local: [B, N, h·dv]; gate: [B, N, G] (logits in columns [gateOffset, gateOffset + h·dv));
 * gammaO, gammaL: [dv]. Output act(σ(g) ⊙ RMSNorm(o; γo) + (1 − σ(g)) ⊙ RMSNorm(local; γl)), [B, N, h·dv].
 */
export type GliMergeInputs = { o: unknown; local: unknown; gate: unknown; gammaO: unknown; gammaL: unknown };
export interface GliMergeAttrs {
  gateOffset: number;
  eps: number;
  activation: 'linear' | 'silu';
}

export const AdamWUpdate = 'AdamWUpdate';
/** param, m, v, grad: one parameter's tensors, all the same shape. Output (by `which`): the parameter, first or
 *  second moment after one AdamW step. */
export type AdamWInputs = { param: unknown; m: unknown; v: unknown; grad: unknown };
export interface AdamWStep {
  beta1: number;
  beta2: number;
  /** Bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ. */
  b1c: number;
  b2c: number;
  eps: number;
  lr: number;
  /** lr × weight decay, 0 for parameters without decay. */
  lrWd: number;
}
export interface AdamWAttrs extends AdamWStep {
  which: 'param' | 'm' | 'v';
}
