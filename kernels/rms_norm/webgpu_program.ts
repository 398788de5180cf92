/** RMSNorm in WGSL: each invocation sums the squares of a strided part of its row, the workgroup adds them up, then every invocation scales its part. */
import { ROW_WORKGROUP as WG, RowProgram } from '../row_program.ts';

export function rmsNormProgram(shape: number[]): RowProgram {
  return new RowProgram(['x', 'gamma'], 'rms_norm_fused', shape, `
    var s = 0.0;
    if (live) { for (var c = t; c < C; c += ${WG}) { let v = x[base + c]; s = fma(v, v, s); } }
    let r = inverseSqrt(rowSum(t, s) / f32(C) + uniforms.eps);
    if (!live) { return; }
    for (var c = t; c < C; c += ${WG}) { result[base + c] = x[base + c] * r * gamma[c]; }
  `);
}
