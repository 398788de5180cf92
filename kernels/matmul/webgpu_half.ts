/**
 * f16-in / f32-accumulate matmul on subgroup matrices (Dawn's chromium-experimental-subgroup-matrix: tensor cores
 * through Vulkan cooperative matrices on NVIDIA). The fp32 operands are first rounded to f16 and packed two per
 * int32 (HalfPackProgram); one subgroup per workgroup then computes a 4×4 block of the adapter's M×N result
 * matrices, loading its operands straight from storage (a 64×64 output block for 16×16×16 matrices). On an H200
 * this layout measured 74 TFLOP/s at 4096³; staging the operands through workgroup memory, several subgroups per
 * workgroup and deeper register tiles were all slower there (bench/RESULTS.md).
 * Only for shapes whose blocks fit exactly and untransposed operands; everything else stays fp32 (webgpu.ts).
 */
import type { WebGPUProgram } from '../_webgpu_internal.ts';
import { flatDispatch, shaderMarkersInstalled, subgroupMatrixConfigs, type SubgroupMatrixConfig } from '../_webgpu_internal.ts';

/** Result matrices per subgroup along M and along N. */
const TILES = 4;

/** The f16 × f16 → f32 shape to use and the subgroup size it runs with, or null where there is none. */
export function halfMatmulShape(): { config: SubgroupMatrixConfig; subgroup: number } | null {
  if (!shaderMarkersInstalled()) return null;
  const { configs, subgroupMinSize, subgroupMaxSize } = subgroupMatrixConfigs();
  // one subgroup per workgroup needs a fixed subgroup size: the workgroup is sized to it
  if (subgroupMinSize <= 0 || subgroupMinSize !== subgroupMaxSize) return null;
  const fits = configs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32');
  const best = fits.sort((a, b) => b.M * b.N * b.K - a.M * a.N * a.K)[0];
  return best ? { config: best, subgroup: subgroupMinSize } : null;
}

/** Whether [batch, M, K] · [K, N] can take the f16 path with `config` (whole blocks, K in whole matrices). */
export function halfMatmulFits(config: SubgroupMatrixConfig, M: number, N: number, K: number): boolean {
  return M % (TILES * config.M) === 0 && N % (TILES * config.N) === 0 && K % config.K === 0;
}

/** fp32 → f16 (round to nearest even), two per int32 element, the lower index in the low half. */
export class HalfPackProgram implements WebGPUProgram {
  variableNames = ['x'];
  outputShape: number[];
  shaderKey = 'half_pack';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'n : i32,';
  size = true;

  constructor(n: number) {
    this.outputShape = [Math.ceil(n / 2)];
    this.dispatch = flatDispatch(this.outputShape[0]!, 256);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let i = index * 2;
        var hi = 0.0;
        if (i + 1 < uniforms.n) { hi = x[i + 1]; }
        result[index] = bitcast<i32>(pack2x16float(vec2<f32>(x[i], hi)));
      }
    `;
  }
}

/** What the subgroup-matrix matmul programs share: inputs a and b of packed halves, C [batch, M, N], the uniforms. */
export abstract class HalfMatmulProgramBase implements WebGPUProgram {
  variableNames = ['a', 'b'];
  outputShape: number[];
  shaderKey = '';
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  workgroupSize: [number, number, number] = [1, 1, 1];
  uniforms = 'M : i32, N : i32, K : i32, batchB : i32,';

  constructor(outShape: [number, number, number]) {
    this.outputShape = outShape;
  }

  abstract getUserCode(): string;
}

/** The WGSL aliases of the f16 × f16 → f32 matrix types; WGSL orders a matrix type's sizes as columns, rows. */
export function halfMatrixAliases({ M, N, K }: SubgroupMatrixConfig): string {
  return `alias HalfL = subgroup_matrix_left<f16, ${K}, ${M}>;
      alias HalfR = subgroup_matrix_right<f16, ${N}, ${K}>;
      alias HalfAcc = subgroup_matrix_result<f32, ${N}, ${M}>;`;
}

/** The sizes from the uniforms and where batch wid.z starts in A, B (shared or per batch) and C. */
export const HALF_MATMUL_BASES = `let M = u32(uniforms.M);
        let N = u32(uniforms.N);
        let K = u32(uniforms.K);
        let aBase = wid.z * M * K;
        let bBase = select(0u, wid.z, uniforms.batchB > 1) * K * N;
        let oBase = wid.z * M * N;`;

/** C[batch] = A[batch] · B[batch or 0], A and B packed halves, C fp32; M, N, K multiples of the blocks. */
export class MatMulHalfProgram extends HalfMatmulProgramBase {
  constructor(outShape: [number, number, number], private readonly config: SubgroupMatrixConfig, subgroup: number) {
    super(outShape);
    this.workgroupSize = [subgroup, 1, 1];
    this.dispatch = [outShape[2] / (TILES * config.N), outShape[1] / (TILES * config.M), outShape[0]];
    // the matrix shape and subgroup size are baked; M, N, K and the batch are uniforms
    this.shaderKey = `mm_half_sgm_${config.M}x${config.N}x${config.K}_${subgroup}`;
  }

  getUserCode(): string {
    const { M: sm, N: sn, K: sk } = this.config;
    const acc: string[] = [];
    const loads: string[] = [];
    const mma: string[] = [];
    const store: string[] = [];
    for (let i = 0; i < TILES; i++) loads.push(`let a${i} = subgroupMatrixLoad<HalfL>(&a, aBase + (row0 + ${i * sm}u) * K + k, false, K);`);
    for (let j = 0; j < TILES; j++) loads.push(`let b${j} = subgroupMatrixLoad<HalfR>(&b, bBase + k * N + col0 + ${j * sn}u, false, N);`);
    for (let i = 0; i < TILES; i++) {
      for (let j = 0; j < TILES; j++) {
        acc.push(`var c${i}${j} = HalfAcc();`);
        mma.push(`c${i}${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, c${i}${j});`);
        store.push(`subgroupMatrixStore(&result, oBase + (row0 + ${i * sm}u) * N + col0 + ${j * sn}u, c${i}${j}, false, N);`);
      }
    }
    return `
//!enable f16 chromium_experimental_subgroup_matrix
//!f16 a b
//!entry mainWg
      ${halfMatrixAliases(this.config)}
      // never called: the entry point runs mainWg (see applyShaderMarkers)
      fn main() {}
      fn mainWg(wid : vec3<u32>) {
        ${HALF_MATMUL_BASES}
        let row0 = wid.y * ${TILES * sm}u;
        let col0 = wid.x * ${TILES * sn}u;
        ${acc.join('\n        ')}
        for (var k = 0u; k < K; k += ${sk}u) {
          ${loads.join('\n          ')}
          ${mma.join('\n          ')}
        }
        ${store.join('\n        ')}
      }
    `;
  }
}
