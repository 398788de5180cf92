/**
 * Multi-axis partition as one gather: each invocation writes one output element (four channels at once
 * when C is a multiple of 4) from its source pixel. The direction is baked (shader key); the grid, block
 * and channel sizes are uniforms.
 */
import { flatDispatch, type WebGPUProgram } from '../_webgpu_internal.ts';

export class MultiAxisProgram implements WebGPUProgram {
  variableNames = ['x'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'gh : i32, gw : i32, fh : i32, fw : i32, C : i32,';
  size = true;
  outputComponent: number;

  constructor(
    outShape: number[],
    private readonly inverse: boolean,
  ) {
    this.outputShape = outShape;
    this.outputComponent = outShape[3]! % 4 === 0 ? 4 : 1;
    this.shaderKey = `multi_axis_${inverse ? 'unpartition' : 'partition'}_c${this.outputComponent}`;
    this.dispatchLayout = { x: outShape.map((_, i) => i) };
    this.dispatch = flatDispatch(outShape.reduce((a, b) => a * b, 1) / this.outputComponent, this.workgroupSize[0]);
  }

  getUserCode(): string {
    // pixel = offset of the channel group's pixel in the image [n, gh·fh, gw·fw]; blocks [n, gh·gw, fh·fw]
    const body = this.inverse
      ? `let W = u.gw * u.fw;
         let xx = pix % W;
         let yy = (pix / W) % (u.gh * u.fh);
         let n = pix / (W * u.gh * u.fh);
         let src = ((n * u.gh * u.gw + (yy / u.fh) * u.gw + xx / u.fw) * u.fh * u.fw + (yy % u.fh) * u.fw + xx % u.fw);`
      : `let P = u.fh * u.fw;
         let pi = pix % P;
         let gi = (pix / P) % (u.gh * u.gw);
         let n = pix / (P * u.gh * u.gw);
         let src = ((n * u.gh * u.fh + (gi / u.gw) * u.fh + pi / u.fw) * u.gw * u.fw + (gi % u.gw) * u.fw + pi % u.fw);`;
    return `
      fn main(index : i32) {
        if (index >= uniforms.size) { return; }
        let u = uniforms;
        let C4 = u.C / ${this.outputComponent};
        let c = index % C4;
        let pix = index / C4;
        ${body}
        result[index] = x[src * C4 + c];
      }
    `;
  }
}
