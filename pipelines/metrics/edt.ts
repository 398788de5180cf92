/**
 * Exact Euclidean distance transform with anisotropic spacing (Felzenszwalb & Huttenlocher's separable
 * lower-envelope algorithm, one pass per axis), in x-fastest volume layout. Returns, for every voxel,
 * the distance in mm to the nearest voxel where `seed` is set (Infinity when there is none).
 */

export function distanceTransform(seed: Uint8Array, shape: readonly number[], spacing: readonly number[]): Float64Array {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const n = nx * ny * nz;
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) f[i] = seed[i] ? 0 : Infinity;
  const dims = [nx, ny, nz];
  const strides = [1, nx, nx * ny];
  const longest = Math.max(nx, ny, nz);
  const buf = new Float64Array(longest);
  const out = new Float64Array(longest);
  const v = new Int32Array(longest);
  const z = new Float64Array(longest + 1);
  for (let axis = 0; axis < 3; axis++) {
    const len = dims[axis]!;
    if (len === 1) continue;
    const stride = strides[axis]!;
    const w2 = (spacing[axis] ?? 1) ** 2;
    const others = dims.map((d, a) => (a === axis ? 1 : d));
    for (let c = 0; c < others[2]!; c++) {
      for (let b = 0; b < others[1]!; b++) {
        for (let a = 0; a < others[0]!; a++) {
          const base = a * strides[0]! * (axis === 0 ? 0 : 1) + b * strides[1]! * (axis === 1 ? 0 : 1) + c * strides[2]! * (axis === 2 ? 0 : 1);
          for (let i = 0; i < len; i++) buf[i] = f[base + i * stride]!;
          envelope(buf, out, len, w2, v, z);
          for (let i = 0; i < len; i++) f[base + i * stride] = out[i]!;
        }
      }
    }
  }
  for (let i = 0; i < n; i++) f[i] = Math.sqrt(f[i]!);
  return f;
}

/** 1D squared-distance transform of sampled function g with squared spacing w2. */
function envelope(g: Float64Array, d: Float64Array, n: number, w2: number, v: Int32Array, z: Float64Array): void {
  let k = -1;
  for (let q = 0; q < n; q++) {
    if (g[q] === Infinity) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    let s = intersect(g, v[k]!, q, w2);
    while (s <= z[k]!) {
      k--;
      if (k < 0) break;
      s = intersect(g, v[k]!, q, w2);
    }
    k++;
    v[k] = q;
    z[k] = k === 0 ? -Infinity : s;
    z[k + 1] = Infinity;
  }
  if (k < 0) {
    for (let q = 0; q < n; q++) d[q] = Infinity;
    return;
  }
  let j = 0;
  for (let q = 0; q < n; q++) {
    while (z[j + 1]! < q) j++;
    const dq = q - v[j]!;
    d[q] = w2 * dq * dq + g[v[j]!]!;
  }
}

function intersect(g: Float64Array, p: number, q: number, w2: number): number {
  return (g[q]! + w2 * q * q - (g[p]! + w2 * p * p)) / (2 * w2 * (q - p));
}
