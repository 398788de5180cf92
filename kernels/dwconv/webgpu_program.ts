/**
 * Fused depthwise convolution in WGSL: one invocation per output element (channel fastest, so
 * neighbouring invocations read neighbouring channels), k×k window from uniforms, the activation and
 * whether a gate is applied baked into the source and named in the shader key.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';
import type { Activation } from '../kernel_names.ts';

/** Each activation as the body of a WGSL `fn act(a : f32) -> f32` (shared with the matmul epilogue). */
export const ACTIVATIONS: Record<Activation, string> = {
  linear: 'return a;',
  relu: 'return max(a, 0.0);',
  sigmoid: 'return 1.0 / (1.0 + exp(-a));',
  silu: 'return a / (1.0 + exp(-a));',
  // erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), WGSL has no erf
  gelu: `let z = abs(a) * 0.70710678118654752;
         let t = 1.0 / (1.0 + 0.3275911 * z);
         let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-z * z);
         return 0.5 * a * (1.0 + sign(a) * y);`,
  gelu_tanh: 'let u = 0.7978845608028654 * (a + 0.044715 * a * a * a); return 0.5 * a * (1.0 + tanh(clamp(u, -15.0, 15.0)));',
};

export class DwconvProgram implements WebGPUProgram {
  // without a bias or a gate the input is not bound at all: an unused binding is stripped by the WGSL compiler
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [128, 1, 1];
  uniforms = 'H : i32, W : i32, C : i32, KH : i32, KW : i32, OH : i32, OW : i32, SH : i32, SW : i32, PT : i32, PL : i32,';
  size = true;
  /** 4 when C is a multiple of 4: every binding is then read as vec4 (four channels per invocation). */
  outputComponent: number;

  constructor(
    outShape: number[],
    private readonly activation: Activation,
    private readonly hasGate: boolean,
    private readonly hasBias = true,
  ) {
    this.outputShape = outShape;
    this.outputComponent = outShape[3]! % 4 === 0 ? 4 : 1;
    this.variableNames = ['x', 'w', ...(hasBias ? ['bias'] : []), ...(hasGate ? ['gate'] : [])];
    this.shaderKey = `dwconv_fused_${activation}${hasBias ? '' : '_nobias'}_${hasGate ? 'gate' : 'nogate'}_c${this.outputComponent}`;
    this.dispatchLayout = { x: outShape.map((_, i) => i) };
    const n = outShape.reduce((a, b) => a * b, 1) / this.outputComponent;
    this.dispatch = flatDispatch(n, this.workgroupSize[0]);
  }

  getUserCode(): string {
    const c4 = this.outputComponent === 4;
    const T = c4 ? 'vec4<f32>' : 'f32';
    // the activation is written for scalars; vec4 applies it per lane
    const act = c4 ? `fn act4(a : vec4<f32>) -> vec4<f32> { return vec4<f32>(act(a.x), act(a.y), act(a.z), act(a.w)); }` : '';
    return `
      fn act(a : f32) -> f32 { ${ACTIVATIONS[this.activation]} }
      ${act}
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        // C4 = channel groups per pixel (C/4 with vec4 bindings, C otherwise)
        let C4 = uniforms.C / ${this.outputComponent};
        let c = index % C4;
        let ox = (index / C4) % uniforms.OW;
        let oy = (index / (C4 * uniforms.OW)) % uniforms.OH;
        let n = index / (C4 * uniforms.OW * uniforms.OH);
        let H = uniforms.H;
        let W = uniforms.W;
        var acc = ${this.hasBias ? `${T}(bias[c])` : `${T}(0.0)`};
        for (var dy = 0; dy < uniforms.KH; dy++) {
          let yy = oy * uniforms.SH + dy - uniforms.PT;
          if (yy < 0 || yy >= H) { continue; }
          for (var dx = 0; dx < uniforms.KW; dx++) {
            let xx = ox * uniforms.SW + dx - uniforms.PL;
            if (xx < 0 || xx >= W) { continue; }
            acc = fma(${T}(x[((n * H + yy) * W + xx) * C4 + c]), ${T}(w[(dy * uniforms.KW + dx) * C4 + c]), acc);
          }
        }
        var out = ${c4 ? 'act4' : 'act'}(acc);
        ${this.hasGate ? `out = out * ${T}(gate[index]);` : ''}
        result[index] = out;
      }
    `;
  }
}
