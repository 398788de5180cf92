/**
 * The backward pass of GliMerge on WebGPU: one kernel per input gradient (do, dlocal, dgate; dγo and dγl as
 * per-row terms summed by one reduction each) instead of the forty-odd of the reference's VJP. Each runs one
 * workgroup of 64 per (token, head) row and recomputes the row's norms and gate. Elsewhere each gradient is
 * the VJP of the reference, which the kernel is tested against. With m the pre-activation output, dm = dy·act'(m):
 *   dz = dm (ôγo − l̂γl) σ(1 − σ); dô = dm σ γo; do = ro (dô − ô mean(dô ô)); likewise dl with (1 − σ) γl;
 *   dγo = Σ_rows dm σ ô; dγl = Σ_rows dm (1 − σ) l̂.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { flatDispatch, type WebGPUBackend, type WebGPUProgram } from '../_webgpu_internal.ts';
import { workgroupSumWgsl } from '../wgsl_reduce.ts';
import { forceReference } from '../flags.ts';
import type { GliMergeAttrs } from '../kernel_names.ts';
import { vjp } from '../vjp.ts';
import { gliMergeReference } from './reference.ts';
import { GLI_ROW_WGSL } from './webgpu.ts';

export const GliMergeGrad = 'GliMergeGrad';
export type GliGradOutput = 'o' | 'local' | 'gate' | 'gammaO' | 'gammaL';
const ORDER: GliGradOutput[] = ['o', 'local', 'gate', 'gammaO', 'gammaL'];

/** The five input gradients, each computed when asked for: by its kernel on WebGPU, else all at once by the VJP. */
export function gliMergeGrads(dy: tf.Tensor, inputs: tf.Tensor[], attrs: GliMergeAttrs): Record<GliGradOutput, () => tf.Tensor> {
  if (forceReference() || tf.getKernel(GliMergeGrad, tf.getBackend()) === undefined) {
    const f = (o: tf.Tensor, l: tf.Tensor, g: tf.Tensor, go: tf.Tensor, gl: tf.Tensor) => gliMergeReference(o as tf.Tensor4D, l as tf.Tensor3D, g as tf.Tensor3D, go as tf.Tensor1D, gl as tf.Tensor1D, attrs);
    const grads = vjp(f as (...xs: tf.Tensor[]) => tf.Tensor, inputs, dy);
    return Object.fromEntries(ORDER.map((k, i) => [k, () => grads[i]!])) as Record<GliGradOutput, () => tf.Tensor>;
  }
  return Object.fromEntries(ORDER.map((k) => [k, () => onDevice(k, dy, inputs, attrs)])) as Record<GliGradOutput, () => tf.Tensor>;
}

function onDevice(output: GliGradOutput, dy: tf.Tensor, inputs: tf.Tensor[], attrs: GliMergeAttrs): tf.Tensor {
  const [o, local, gate, gammaO, gammaL] = inputs;
  const a = { ...attrs, output } as unknown as NamedAttrMap;
  const run = () => tf.engine().runKernel(GliMergeGrad, { dy, o: o!, local: local!, gate: gate!, gammaO: gammaO!, gammaL: gammaL! }, a) as tf.Tensor;
  // the γ gradients come back per row, [rows, dv]: one reduction sums them
  return output === 'gammaO' || output === 'gammaL' ? tf.tidy(() => tf.sum(run(), 0)) : run();
}

const WG = 64;

class GliMergeGradProgram implements WebGPUProgram {
  variableNames = ['dy', 'o', 'loc', 'gate', 'gammaO', 'gammaL'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'heads : i32, N : i32, dv : i32, G : i32, offset : i32, rows : i32, eps : f32,';

  constructor(shape: number[], rows: number, private readonly output: GliGradOutput, private readonly silu: boolean) {
    this.outputShape = shape;
    this.shaderKey = `gli_merge_grad_${output}_${silu ? 'silu' : 'linear'}`;
    this.dispatchLayout = { x: [0] };
    this.dispatch = flatDispatch(rows, 1);
  }

  getUserCode(): string {
    const dot = this.output === 'o' || this.output === 'local';
    const write: Record<GliGradOutput, string> = {
      o: 'result[oBase + c] = r.x * (dm * s * gammaO[c] - on * dots.x / f32(dv));',
      local: 'result[lBase + c] = r.y * (dm * (1.0 - s) * gammaL[c] - ln * dots.y / f32(dv));',
      gate: 'result[gBase + c] = dm * (on * gammaO[c] - ln * gammaL[c]) * s * (1.0 - s);',
      gammaO: 'result[row * dv + c] = dm * s * on;',
      gammaL: 'result[row * dv + c] = dm * (1.0 - s) * ln;',
    };
    return `
      ${workgroupSumWgsl('reduce', 'vec2<f32>', WG)}
      fn main(unused : i32) {
${GLI_ROW_WGSL}
        var sq = vec2<f32>(0.0);
        if (live) { for (var c = t; c < dv; c += ${WG}) { let ov = o[oBase + c]; let lv = loc[lBase + c]; sq = sq + vec2<f32>(ov * ov, lv * lv); } }
        let r = inverseSqrt(reduce(t, sq) / f32(dv) + vec2<f32>(uniforms.eps));
        ${dot ? `var dd = vec2<f32>(0.0);
        if (live) {
          for (var c = t; c < dv; c += ${WG}) {
            let on = o[oBase + c] * r.x;
            let ln = loc[lBase + c] * r.y;
            let s = 1.0 / (1.0 + exp(-gate[gBase + c]));
            let dm = dgrad(dy[lBase + c], s * on * gammaO[c] + (1.0 - s) * ln * gammaL[c]);
            dd = dd + vec2<f32>(dm * s * gammaO[c] * on, dm * (1.0 - s) * gammaL[c] * ln);
          }
        }
        let dots = reduce(t, dd);` : ''}
        if (!live) { return; }
        ${this.output === 'gate' ? `// the gate's other columns (and the other heads' logits are written by their own rows)
        if (head == 0) {
          for (var c = t; c < uniforms.offset; c += ${WG}) { result[bn * uniforms.G + c] = 0.0; }
          for (var c = uniforms.offset + uniforms.heads * dv + t; c < uniforms.G; c += ${WG}) { result[bn * uniforms.G + c] = 0.0; }
        }` : ''}
        for (var c = t; c < dv; c += ${WG}) {
          let on = o[oBase + c] * r.x;
          let ln = loc[lBase + c] * r.y;
          let s = 1.0 / (1.0 + exp(-gate[gBase + c]));
          let dm = dgrad(dy[lBase + c], s * on * gammaO[c] + (1.0 - s) * ln * gammaL[c]);
          ${write[this.output]}
        }
      }
      fn dgrad(g : f32, m : f32) -> f32 {
        ${this.silu ? 'let sm = 1.0 / (1.0 + exp(-m)); return g * sm * (1.0 + m * (1.0 - sm));' : 'return g;'}
      }
    `;
  }
}

const gliMergeGradWebgpu: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, o, local, gate, gammaO, gammaL } = inputs as Record<string, TensorInfo>;
  const { gateOffset, eps, activation, output } = attrs as unknown as GliMergeAttrs & { output: GliGradOutput };
  const [B, h, N, dv] = o!.shape as [number, number, number, number];
  const rows = B * N * h;
  const shape = output === 'o' ? o!.shape : output === 'local' ? local!.shape : output === 'gate' ? gate!.shape : [rows, dv];
  const uniforms = [h, N, dv, gate!.shape[2]!, gateOffset, rows].map((v) => ({ type: 'int32', data: [v] }));
  uniforms.push({ type: 'float32', data: [eps] });
  const program = new GliMergeGradProgram(shape, rows, output, activation === 'silu');
  return (backend as WebGPUBackend).runWebGPUProgram(program, [dy!, o!, local!, gate!, gammaO!, gammaL!], 'float32', uniforms);
};

export const gliMergeGradWebgpuConfig: KernelConfig = { kernelName: GliMergeGrad, backendName: 'webgpu', kernelFunc: gliMergeGradWebgpu };
