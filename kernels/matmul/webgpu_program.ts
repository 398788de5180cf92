/**
 * fp32 matmul in WGSL: 128×128 output tiles per 256-invocation workgroup, K in steps of 16 through
 * workgroup memory (both operands stored k-major so the inner loop reads vec4s), an 8×8 register tile per
 * invocation (two 4-row by two 4-column blocks, 64 and 4 apart, so a warp's vec4 reads stay contiguous).
 * Grids too small to fill a large GPU (a projection of 4096 tokens to 192 channels is 64 such tiles) take
 * 64×64 tiles with a 4×4 register tile instead: four times the workgroups for the same work.
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

/**
 * Below this many 128-tiles in the grid a matmul takes 64-tiles (tests move it to force either path). A large
 * GPU runs a few hundred workgroups at once; a small one is full either way.
 */
export const matmulTuning = { smallTileBelow: 256 };

/** The tile edge for an output of batch × M × cols (cols: columns of b); gated epilogues need 128. */
export function matmulTile(batch: number, M: number, cols: number, gated = false): 64 | 128 {
  if (gated) return 128;
  return batch * Math.ceil(M / 128) * Math.ceil(cols / 128) < matmulTuning.smallTileBelow ? 64 : 128;
}

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
  /** 128-tiles: 2 row and 2 column blocks of 4 per invocation; 64-tiles: 1 and 1. */
  private readonly S: number;

  constructor(
    outShape: [number, number, number],
    private readonly transposeA: boolean,
    private readonly transposeB: boolean,
    K: number,
    private readonly epilogue: MatMulEpilogue | null = null,
    private readonly tile: 64 | 128 = MM_TILE,
  ) {
    if (epilogue?.gated && tile !== 128) throw new Error('a gated epilogue needs 128-column tiles');
    this.S = tile / 64;
    this.outputShape = outShape;
    this.variableNames = ['a', 'b'];
    if (epilogue?.hasBias) this.variableNames.push('bias');
    if (epilogue?.hasResidual) this.variableNames.push('residual');
    const cols = epilogue?.gated ? 2 * outShape[2] : outShape[2]; // columns of b
    this.dispatch = [Math.ceil(cols / tile), Math.ceil(outShape[1] / tile), outShape[0]];
    this.fit = !transposeA && !transposeB && outShape[1] % tile === 0 && cols % tile === 0 && K % BK === 0;
    this.variableComponents = this.fit ? [4, 4, ...this.variableNames.slice(2).map(() => 1)] : undefined;
    if (epilogue?.rmsNorm) this.uniforms += ' eps : f32,';
    const ep = epilogue ? `_${epilogue.gated ? 'gated' : epilogue.activation}${epilogue.hasBias ? '_bias' : ''}${epilogue.hasResidual ? '_res' : ''}${epilogue.rmsNorm ? '_rms' : ''}` : '';
    this.shaderKey = `mm_tiled${tile}_${transposeA ? 't' : 'n'}${transposeB ? 't' : 'n'}${this.fit ? '_fit' : ''}${ep}`;
  }

  /** Stages one K step with vec4 global loads: A rows along k, scattered into k-major columns; B rows as is. */
  private fitStaging(): string {
    const G = this.tile / 4; // vec4 groups along a tile edge
    return `
          for (var h = 0; h < ${this.S}; h++) {
            let slot = lid + h * 256;
            let ra = slot / 4;                   // row of A in the tile, 4 k-quads per row
            let qa = slot % 4;
            let av = a[(aBase + (m0 + ra) * K + k0) / 4 + qa];
            for (var e = 0; e < 4; e++) { As[(qa * 4 + e) * ${G} + ra / 4][ra % 4] = av[e]; }
            let kb = slot / ${G};
            let gb = slot % ${G};
            Bs[kb * ${G} + gb] = b[(bBase + (k0 + kb) * N + n0) / 4 + gb];
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
        for (var half = 0; half < ${this.S}; half++) {
          for (var r = 0; r < 4; r++) {
            let m = m0 + (ty + half * 16) * 4 + r;
            if (m >= M) { continue; }
            for (var side = 0; side < ${this.S}; side++) {
              let v = acc[(half * 4 + r) * ${this.S} + side];
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
    const R = 4 * this.S; // rows per invocation
    return `
        for (var i = 0; i < ${R}; i++) {
          let m = m0 + (ty + (i / 4) * 16) * 4 + i % 4;
          var part = 0.0;
          if (m < M) { ${sum} }
          Rs[(ty * ${R} + i) * 16 + tx] = part;
        }
        workgroupBarrier();
        for (var i = 0; i < ${R}; i++) {
          var total = 0.0;
          for (var j = 0; j < 16; j++) { total = total + Rs[(ty * ${R} + i) * 16 + j]; }
          let sc = inverseSqrt(total / f32(K) + uniforms.eps);
          for (var side = 0; side < ${this.S}; side++) { acc[i * ${this.S} + side] = acc[i * ${this.S} + side] * sc; }
        }
`;
  }

  private userCode(aAt: string, bAt: string, prelude: string, outputs: string): string {
    return `
      ${prelude}
      ${this.epilogue?.rmsNorm ? `var<workgroup> Rs : array<f32, ${1024 * this.S}>;` : ''}
      var<workgroup> As : array<vec4<f32>, ${(BK * this.tile) / 4}>;
      var<workgroup> Bs : array<vec4<f32>, ${(BK * this.tile) / 4}>;
      fn main() {
        let M = uniforms.M;
        let N = uniforms.N;
        let K = uniforms.K;
        let batch = i32(workgroupId.z);
        let aBase = batch * M * K;
        let bBase = select(0, batch, uniforms.batchB > 1) * K * N;
        let m0 = i32(workgroupId.y) * ${this.tile};
        let n0 = i32(workgroupId.x) * ${this.tile};
        let lid = i32(localIndex);
        let tx = lid % 16;
        let ty = lid / 16;
        var acc : array<vec4<f32>, ${4 * this.S * this.S}>;
        for (var i = 0; i < ${4 * this.S * this.S}; i++) { acc[i] = vec4<f32>(0.0); }
        for (var k0 = 0; k0 < K; k0 += ${BK}) {
          ${this.fit ? this.fitStaging() : `// each invocation stages 8 values of A and 8 of B (two vec4 of 4 consecutive rows/columns); the
          // slot order puts consecutive invocations on consecutive addresses of the operand in memory
          for (var h = 0; h < ${this.S}; h++) {
            let slot = lid + h * 256;            // 16 k × (tile / 4) groups of 4
            ${this.transposeA ? `let ka = slot / ${this.tile / 4}; let ga = slot % ${this.tile / 4};` : 'let ka = slot % 16; let ga = slot / 16;'}
            ${this.transposeB ? 'let kb = slot % 16; let gb = slot / 16;' : `let kb = slot / ${this.tile / 4}; let gb = slot % ${this.tile / 4};`}
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
            As[ka * ${this.tile / 4} + ga] = av;
            Bs[kb * ${this.tile / 4} + gb] = bv;
          }`}
          workgroupBarrier();
          for (var kk = 0; kk < ${BK}; kk++) {${this.S === 2 ? `
            let a0 = As[kk * 32 + ty];
            let a1 = As[kk * 32 + ty + 16];
            let b0 = Bs[kk * 32 + tx];
            let b1 = Bs[kk * 32 + tx + 16];
            for (var r = 0; r < 4; r++) {
              acc[r * 2] = fma(vec4<f32>(a0[r]), b0, acc[r * 2]);
              acc[r * 2 + 1] = fma(vec4<f32>(a0[r]), b1, acc[r * 2 + 1]);
              acc[8 + r * 2] = fma(vec4<f32>(a1[r]), b0, acc[8 + r * 2]);
              acc[8 + r * 2 + 1] = fma(vec4<f32>(a1[r]), b1, acc[8 + r * 2 + 1]);
            }` : `
            let a0 = As[kk * 16 + ty];
            let b0 = Bs[kk * 16 + tx];
            for (var r = 0; r < 4; r++) { acc[r] = fma(vec4<f32>(a0[r]), b0, acc[r]); }`}
          }
          workgroupBarrier();
        }
${this.epilogue?.rmsNorm ? this.rowRms() : ''}${outputs}      }
    `;
  }
}
