/**
 * Fused depthwise convolution in WGSL: one invocation per output element (channel fastest, so
 * neighbouring invocations read neighbouring channels), k×k window from uniforms, the activation and
 * whether a gate is applied baked into the source and named in the shader key.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';
import type { Activation } from '../kernel_names.ts';

const ACTIVATIONS: Record<Activation, string> = {
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
  // without a gate the input is not bound at all: an unused binding is stripped by the WGSL compiler
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'H : i32, W : i32, C : i32, KH : i32, KW : i32,';
  size = true;

  constructor(
    outShape: number[],
    private readonly activation: Activation,
    private readonly hasGate: boolean,
  ) {
    this.outputShape = outShape;
    this.variableNames = hasGate ? ['x', 'w', 'bias', 'gate'] : ['x', 'w', 'bias'];
    this.shaderKey = `dwconv_fused_${activation}_${hasGate ? 'gate' : 'nogate'}`;
    this.dispatchLayout = { x: outShape.map((_, i) => i) };
    const n = outShape.reduce((a, b) => a * b, 1);
    this.dispatch = flatDispatch(outShape.reduce((a, b) => a * b, 1), this.workgroupSize[0]);
  }

  getUserCode(): string {
    return `
      fn act(a : f32) -> f32 { ${ACTIVATIONS[this.activation]} }
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let C = uniforms.C;
        let W = uniforms.W;
        let H = uniforms.H;
        let c = index % C;
        let xw = (index / C) % W;
        let yh = (index / (C * W)) % H;
        let n = index / (C * W * H);
        let ph = uniforms.KH / 2;
        let pw = uniforms.KW / 2;
        var acc = f32(bias[c]);
        for (var dy = 0; dy < uniforms.KH; dy++) {
          let yy = yh + dy - ph;
          if (yy < 0 || yy >= H) { continue; }
          for (var dx = 0; dx < uniforms.KW; dx++) {
            let xx = xw + dx - pw;
            if (xx < 0 || xx >= W) { continue; }
            acc = acc + f32(x[((n * H + yy) * W + xx) * C + c]) * f32(w[(dy * uniforms.KW + dx) * C + c]);
          }
        }
        var out = act(acc);
        ${this.hasGate ? 'out = out * f32(gate[index]);' : ''}
        result[index] = out;
      }
    `;
  }
}
