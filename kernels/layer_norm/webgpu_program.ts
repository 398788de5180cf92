/**
 * LayerNorm in WGSL: two workgroup sums per row, the mean and then the sum of squared deviations from it (two
 * passes, as PyTorch computes it, so a large common offset does not cancel the variance away), then every
 * invocation normalises a strided part of the row.
 */
import { ROW_WORKGROUP as WG, RowProgram } from '../row_program.ts';

export function layerNormProgram(shape: number[]): RowProgram {
  return new RowProgram(['x', 'gamma', 'beta'], 'layer_norm_fused', shape, `
    var s = 0.0;
    if (live) { for (var c = t; c < C; c += ${WG}) { s += x[base + c]; } }
    let mean = rowSum(t, s) / f32(C);
    var q = 0.0;
    if (live) { for (var c = t; c < C; c += ${WG}) { let d = x[base + c] - mean; q = fma(d, d, q); } }
    let r = inverseSqrt(rowSum(t, q) / f32(C) + uniforms.eps);
    if (!live) { return; }
    for (var c = t; c < C; c += ${WG}) { result[base + c] = fma((x[base + c] - mean) * r, gamma[c], beta[c]); }
  `);
}
