/** Names, inputs and attributes of our custom kernels (one stanza each, as tfjs-core's kernel_names.ts). */

export const GatedLinearAttention = 'GatedLinearAttention';
/** q, k, logDecay: [B, H, T, Dk]; v and acc: [B, H, T, Dv]. Output: acc + scale·scan(q, k, v, logDecay). */
export type GlaInputs = { q: unknown; k: unknown; v: unknown; logDecay: unknown; acc: unknown };
export interface GlaAttrs {
  reverse: boolean;
  scale: number;
}

export const DepthwiseConv2dFused = 'DepthwiseConv2dFused';
/** x: [N, H, W, C]; filter: [kh, kw, C, 1]; bias: [C]; gate: [N, H, W, C] (or a 1-element dummy). */
export type DwInputs = { x: unknown; filter: unknown; bias: unknown; gate: unknown };
export type Activation = 'linear' | 'relu' | 'silu' | 'gelu' | 'gelu_tanh' | 'sigmoid';
export interface DwAttrs {
  activation: Activation;
  hasGate: boolean;
}
