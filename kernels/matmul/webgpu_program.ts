/**
 * fp32 matmul in WGSL: 128×128 output tiles per 256-invocation workgroup, K in steps of 16 through
 * workgroup memory (both operands stored k-major so the inner loop reads vec4s), an 8×8 register tile per
 * invocation (two 4-row by two 4-column blocks, 64 and 4 apart, so a warp's vec4 reads stay contiguous).
 * Transposes are baked (shader key); M, N, K and the batch strides are uniforms. An optional epilogue (bias,
 * activation, residual: LinearFused) is applied as each output is written, also baked and named in the key.
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';
import { ACTIVATIONS } from '../dwconv/webgpu_program.ts';
import type { Activation } from '../kernel_names.ts';

/**
 * What is applied to each output as it is written: act(acc + bias[n]) + residual[m, n]. `gated`: b's columns come
 * in tiles of 128, 64 gates then their 64 values, and the output (half as wide) is SiLU(gate)·value (+ residual):
 * an invocation holds columns c and c + 64 of its tile, so the pair meets in registers.
 */
export interface MatMulEpilogue {
  activation: Activation;
  hasBias: boolean;
  hasResidual: boolean;
  gated?: boolean;
  /**
   * RMSNorm of a's rows without a weight (fold it into b): each output row is scaled by rsqrt(mean_k(a²) + eps),
   * eps a uniform. The 16 invocations sharing a row each sum the squares of every 16th element, then add up.
   */
  rmsNorm?: boolean;
}

/** Width of a gate (or value) group in a gated epilogue's tile. */
export const GATED_GROUP = 64;

export const MM_TILE = 128;
const BK = 16;

export class MatMulTiledProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'M : i32, N : i32, K : i32, batchB : i32,';
  /** 'fit' (no transposes, M and N multiples of 128, K of 16): unchecked vec4 loads of both operands. */
  variableComponents: number[] | undefined;
  private readonly fit: boolean;

  constructor(
    outShape: [number, number, number],
    private readonly transposeA: boolean,
    private readonly transposeB: boolean,
    K: number,
    private readonly epilogue: MatMulEpilogue | null = null,
  ) {
    this.outputShape = outShape;
    this.variableNames = ['a', 'b'];
    if (epilogue?.hasBias) this.variableNames.push('bias');
    if (epilogue?.hasResidual) this.variableNames.push('residual');
    const cols = epilogue?.gated ? 2 * outShape[2] : outShape[2]; // columns of b
    this.dispatch = [Math.ceil(cols / MM_TILE), Math.ceil(outShape[1] / MM_TILE), outShape[0]];
    this.fit = !transposeA && !transposeB && outShape[1] % MM_TILE === 0 && cols % MM_TILE === 0 && K % BK === 0;
    this.variableComponents = this.fit ? [4, 4, ...this.variableNames.slice(2).map(() => 1)] : undefined;
    if (epilogue?.rmsNorm) this.uniforms += ' eps : f32,';
    const ep = epilogue ? `_${epilogue.gated ? 'gated' : epilogue.activation}${epilogue.hasBias ? '_bias' : ''}${epilogue.hasResidual ? '_res' : ''}${epilogue.rmsNorm ? '_rms' : ''}` : '';
    this.shaderKey = `mm_tiled128_${transposeA ? 't' : 'n'}${transposeB ? 't' : 'n'}${this.fit ? '_fit' : ''}${ep}`;
  }

  /** Stages one K step with vec4 global loads: A rows along k, scattered into k-major columns; B rows as is. */
  private fitStaging(): string {
    return `
          for (var h = 0; h < 2; h++) {
            let slot = lid + h * 256;
            let ra = slot / 4;                   // row of A in the tile, 4 k-quads per row
            let qa = slot % 4;
            let av = a[(aBase + (m0 + ra) * K + k0) / 4 + qa];
            for (var e = 0; e < 4; e++) { As[(qa * 4 + e) * 32 + ra / 4][ra % 4] = av[e]; }
            let kb = slot / 32;
            let gb = slot % 32;
            Bs[kb * 32 + gb] = b[(bBase + (k0 + kb) * N + n0) / 4 + gb];
          }
`;
  }

  getUserCode(): string {
    // A element (m, k) and B element (k, n) of this batch, zero outside the matrix
    const aAt = this.transposeA ? 'aBase + k * uniforms.M + m' : 'aBase + m * uniforms.K + k';
    const bAt = this.transposeB ? 'bBase + n * uniforms.K + k' : 'bBase + k * uniforms.N + n';
    const ep = this.epilogue;
    if (ep?.gated) return this.userCode(aAt, bAt, '', this.gatedOutputs(ep));
    const store = !ep
      ? 'result[oBase + m * N + n] = v[e];'
      : `var y = v[e];
                  ${ep.hasBias ? 'y = y + bias[n];' : ''}
                  ${ep.activation !== 'linear' ? 'y = act(y);' : ''}
                  ${ep.hasResidual ? 'y = y + residual[oBase + m * N + n];' : ''}
                  result[oBase + m * N + n] = y;`;
    const outputs = `
        let oBase = batch * M * N;
        for (var half = 0; half < 2; half++) {
          for (var r = 0; r < 4; r++) {
            let m = m0 + (ty + half * 16) * 4 + r;
            if (m >= M) { continue; }
            for (var side = 0; side < 2; side++) {
              let v = acc[half * 8 + r * 2 + side];
              for (var e = 0; e < 4; e++) {
                let n = n0 + (tx + side * 16) * 4 + e;
                if (n < N) {
                  ${store}
                }
              }
            }
          }
        }
`;
    return this.userCode(aAt, bAt, ep && ep.activation !== 'linear' ? `fn act(a : f32) -> f32 { ${ACTIVATIONS[ep.activation]} }` : '', outputs);
  }

  /** SiLU(gate)·value for the column pairs (c, c + 64) each invocation holds, written to the half-width output. */
  private gatedOutputs(ep: MatMulEpilogue): string {
    return `
        let NO = N / 2;
        let oBase = batch * M * NO;
        for (var half = 0; half < 2; half++) {
          for (var r = 0; r < 4; r++) {
            let m = m0 + (ty + half * 16) * 4 + r;
            if (m >= M) { continue; }
            let g = acc[half * 8 + r * 2];
            let v = acc[half * 8 + r * 2 + 1];
            for (var e = 0; e < 4; e++) {
              let n = n0 + tx * 4 + e;
              if (n < N) {
                var gate = g[e];
                var value = v[e];
                ${ep.hasBias ? 'gate = gate + bias[n]; value = value + bias[n + 64];' : ''}
                let j = n0 / 2 + tx * 4 + e;
                var y = gate / (1.0 + exp(-gate)) * value;
                ${ep.hasResidual ? 'y = y + residual[oBase + m * NO + j];' : ''}
                result[oBase + m * NO + j] = y;
              }
            }
          }
        }
`;
  }

  /** Scales the accumulators of each of the invocation's 8 rows by that row's rsqrt(mean(a²) + eps). */
  private rowRms(): string {
    const sum = this.fit
      ? 'for (var q = tx; q < K / 4; q += 16) { let v4 = a[(aBase + m * K) / 4 + q]; part = part + dot(v4, v4); }'
      : 'for (var k = tx; k < K; k += 16) { let v1 = a[aBase + m * K + k]; part = part + v1 * v1; }';
    return `
        for (var i = 0; i < 8; i++) {
          let m = m0 + (ty + (i / 4) * 16) * 4 + i % 4;
          var part = 0.0;
          if (m < M) { ${sum} }
          Rs[(ty * 8 + i) * 16 + tx] = part;
        }
        workgroupBarrier();
        for (var i = 0; i < 8; i++) {
          var total = 0.0;
          for (var j = 0; j < 16; j++) { total = total + Rs[(ty * 8 + i) * 16 + j]; }
          let sc = inverseSqrt(total / f32(K) + uniforms.eps);
          let slot = (i / 4) * 8 + (i % 4) * 2;
          acc[slot] = acc[slot] * sc;
          acc[slot + 1] = acc[slot + 1] * sc;
        }
`;
  }

  private userCode(aAt: string, bAt: string, prelude: string, outputs: string): string {
    return `
      ${prelude}
      ${this.epilogue?.rmsNorm ? 'var<workgroup> Rs : array<f32, 2048>;' : ''}
      var<workgroup> As : array<vec4<f32>, ${(BK * MM_TILE) / 4}>;
      var<workgroup> Bs : array<vec4<f32>, ${(BK * MM_TILE) / 4}>;
      fn main() {
        let M = uniforms.M;
        let N = uniforms.N;
        let K = uniforms.K;
        let batch = i32(workgroupId.z);
        let aBase = batch * M * K;
        let bBase = select(0, batch, uniforms.batchB > 1) * K * N;
        let m0 = i32(workgroupId.y) * ${MM_TILE};
        let n0 = i32(workgroupId.x) * ${MM_TILE};
        let lid = i32(localIndex);
        let tx = lid % 16;
        let ty = lid / 16;
        var acc : array<vec4<f32>, 16>;
        for (var i = 0; i < 16; i++) { acc[i] = vec4<f32>(0.0); }
        for (var k0 = 0; k0 < K; k0 += ${BK}) {
          ${this.fit ? this.fitStaging() : `// each invocation stages 8 values of A and 8 of B (two vec4 of 4 consecutive rows/columns); the
          // slot order puts consecutive invocations on consecutive addresses of the operand in memory
          for (var h = 0; h < 2; h++) {
            let slot = lid + h * 256;            // 512 slots = 16 k × 32 groups of 4
            ${this.transposeA ? 'let ka = slot / 32; let ga = slot % 32;' : 'let ka = slot % 16; let ga = slot / 16;'}
            ${this.transposeB ? 'let kb = slot % 16; let gb = slot / 16;' : 'let kb = slot / 32; let gb = slot % 32;'}
            var av = vec4<f32>(0.0);
            var bv = vec4<f32>(0.0);
            for (var e = 0; e < 4; e++) {
              let m = m0 + ga * 4 + e;
              var k = k0 + ka;
              if (m < M && k < K) { av[e] = a[${aAt}]; }
              let n = n0 + gb * 4 + e;
              k = k0 + kb;
              if (n < N && k < K) { bv[e] = b[${bAt}]; }
            }
            As[ka * 32 + ga] = av;
            Bs[kb * 32 + gb] = bv;
          }`}
          workgroupBarrier();
          for (var kk = 0; kk < ${BK}; kk++) {
            let a0 = As[kk * 32 + ty];
            let a1 = As[kk * 32 + ty + 16];
            let b0 = Bs[kk * 32 + tx];
            let b1 = Bs[kk * 32 + tx + 16];
            for (var r = 0; r < 4; r++) {
              acc[r * 2] = fma(vec4<f32>(a0[r]), b0, acc[r * 2]);
              acc[r * 2 + 1] = fma(vec4<f32>(a0[r]), b1, acc[r * 2 + 1]);
              acc[8 + r * 2] = fma(vec4<f32>(a1[r]), b0, acc[8 + r * 2]);
              acc[8 + r * 2 + 1] = fma(vec4<f32>(a1[r]), b1, acc[8 + r * 2 + 1]);
            }
          }
          workgroupBarrier();
        }
${this.epilogue?.rmsNorm ? this.rowRms() : ''}${outputs}      }
    `;
  }
}
