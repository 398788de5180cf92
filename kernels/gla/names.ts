/**
 * The fused bidirectional GLA kernel (ViG's BiGLA in one kernel call). Its stanza lives beside the op rather
 * than in kernels/kernel_names.ts so the GLA folder owns it whole.
 */
export const BiGatedLinearAttention = 'BiGatedLinearAttention';
/** q, k, logDecayFwd, logDecayBwd: [B, H, T, Dk]; v: [B, H, T, Dv]. Output scale·(scan_fwd + scan_bwd). */
export type BiGlaInputs = { q: unknown; k: unknown; v: unknown; logDecayFwd: unknown; logDecayBwd: unknown };
export interface BiGlaAttrs {
  /** Includes ViG's /2 merge. */
  scale: number;
}

/**
 * The backward pass of BiGatedLinearAttention as one kernel call: inputs as the forward's plus dy [B, H, T, Dv];
 * five outputs, the gradients of q, k, v, logDecayFwd and logDecayBwd, in that order. Attrs as the forward's.
 */
export const BiGatedLinearAttentionGrad = 'BiGatedLinearAttentionGrad';
export type BiGlaGradInputs = BiGlaInputs & { dy: unknown };

/**
 * The backward pass of GatedLinearAttention (one scan) as one kernel call: inputs q, k, v, logDecay and dy; four
 * outputs, the gradients of q, k, v and logDecay (acc's is dy). Attrs as the forward's.
 */
export const GatedLinearAttentionGrad = 'GatedLinearAttentionGrad';
