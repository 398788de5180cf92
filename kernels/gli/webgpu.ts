/**
 * WebGPU kernel for GliMerge: one workgroup of 64 invocations per (token, head) row of dv values; both squared
 * sums in one workgroup reduction, then each invocation writes its part of the row. Whether the SiLU is applied
 * is baked and named in the shader key; sizes, the gate offset and eps are uniforms.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { workgroupSumWgsl } from '../wgsl_reduce.ts';
import { GliMerge, type GliMergeAttrs } from '../kernel_names.ts';

const WG = 64;

/** WGSL opening of the GLI programs, forward and backward: one workgroup per (b, n, head) row; where the row lies
 *  in o ([B, h, N, dv]), in the local branch and the output ([B, N, h·dv]) and in the packed gate columns. */
export const GLI_ROW_WGSL = `
        let row = i32(workgroupId.y * numWorkgroups.x + workgroupId.x);
        let t = i32(localId.x);
        let live = row < uniforms.rows;
        let dv = uniforms.dv;
        let N = uniforms.N;
        let head = row % uniforms.heads;
        let bn = row / uniforms.heads;                   // b·N + n
        let oBase = ((bn / N * uniforms.heads + head) * N + bn % N) * dv;
        let lBase = bn * uniforms.heads * dv + head * dv;
        let gBase = bn * uniforms.G + uniforms.offset + head * dv;`;

class GliMergeProgram implements WebGPUProgram {
  variableNames = ['o', 'loc', 'gate', 'gammaO', 'gammaL'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'heads : i32, N : i32, dv : i32, G : i32, offset : i32, rows : i32, eps : f32,';

  constructor(shape: number[], rows: number, private readonly silu: boolean) {
    this.outputShape = shape;
    this.shaderKey = `gli_merge_${silu ? 'silu' : 'linear'}`;
    this.dispatchLayout = { x: [0] };
    this.dispatch = flatDispatch(rows, 1);
  }

  getUserCode(): string {
    return `
      ${workgroupSumWgsl('reduce', 'vec2<f32>', WG)}
      fn main(unused : i32) {
${GLI_ROW_WGSL}
        var s = vec2<f32>(0.0);
        if (live) {
          for (var c = t; c < dv; c += ${WG}) { let ov = o[oBase + c]; let lv = loc[lBase + c]; s = s + vec2<f32>(ov * ov, lv * lv); }
        }
        let r = inverseSqrt(reduce(t, s) / f32(dv) + vec2<f32>(uniforms.eps));
        if (!live) { return; }
        for (var c = t; c < dv; c += ${WG}) {
          let g = 1.0 / (1.0 + exp(-gate[gBase + c]));
          var m = g * o[oBase + c] * r.x * gammaO[c] + (1.0 - g) * loc[lBase + c] * r.y * gammaL[c];
          ${this.silu ? 'm = m / (1.0 + exp(-m));' : ''}
          result[lBase + c] = m;
        }
      }
    `;
  }
}

const gliMergeWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { o, local, gate, gammaO, gammaL } = inputs as Record<string, TensorInfo>;
  const { gateOffset, eps, activation } = attrs as unknown as GliMergeAttrs;
  const [B, h, N, dv] = o!.shape as [number, number, number, number];
  const rows = B * N * h;
  const uniforms = [h, N, dv, gate!.shape[2]!, gateOffset, rows].map((v) => ({ type: 'int32', data: [v] }));
  uniforms.push({ type: 'float32', data: [eps] });
  const program = new GliMergeProgram([B, N, h * dv], rows, activation === 'silu');
  return (backend as WebGPUBackend).runWebGPUProgram(program, [o!, local!, gate!, gammaO!, gammaL!], 'float32', uniforms);
};

export const gliMergeWebgpuConfig: KernelConfig = { kernelName: GliMerge, backendName: 'webgpu', kernelFunc: gliMergeWebgpu };
