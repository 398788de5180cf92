/**
 * WGSL for a workgroup-wide sum, shared by the row kernels (norms, GLI): `fn name(t : i32, v : T) -> T` returns the
 * sum of every invocation's `v` to every invocation. A tree over workgroup memory, so `wg` must be a power of two
 * and every invocation of the workgroup must make the call (it holds barriers).
 */
export function workgroupSumWgsl(name: string, type: string, wg: number): string {
  if (!(wg > 0 && (wg & (wg - 1)) === 0)) throw new Error(`workgroup size ${wg} is not a power of two`);
  return `
      var<workgroup> ${name}Partial : array<${type}, ${wg}>;
      fn ${name}(t : i32, v : ${type}) -> ${type} {
        ${name}Partial[t] = v;
        workgroupBarrier();
        for (var stride = ${wg / 2}; stride > 0; stride = stride / 2) {
          if (t < stride) { ${name}Partial[t] = ${name}Partial[t] + ${name}Partial[t + stride]; }
          workgroupBarrier();
        }
        let total = ${name}Partial[0];
        workgroupBarrier();
        return total;
      }`;
}
