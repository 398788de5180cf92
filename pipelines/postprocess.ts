/**
 * Label-map clean-up: keep the largest 6-connected 3D component of each class (spurious islands far from
 * the organ are the classic failure of slice-wise models), and fill enclosed holes of each class.
 */
export function keepLargestComponent(labels: Uint8Array | Uint16Array, shape: readonly number[], cls: number): number {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const n = nx * ny * nz;
  const comp = new Int32Array(n).fill(-1);
  const queue = new Int32Array(n);
  let best = -1;
  let bestSize = 0;
  let id = 0;
  for (let s = 0; s < n; s++) {
    if (labels[s] !== cls || comp[s] !== -1) continue;
    const size = flood(s, id, (i) => labels[i] === cls && comp[i] === -1, comp, queue, nx, ny, nz);
    if (size > bestSize) {
      bestSize = size;
      best = id;
    }
    id++;
  }
  let removed = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i] === cls && comp[i] !== best) {
      labels[i] = 0;
      removed++;
    }
  }
  return removed;
}

/** Background regions of a class's mask that do not touch the volume border become that class. */
export function fillHoles(labels: Uint8Array | Uint16Array, shape: readonly number[], cls: number): number {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const n = nx * ny * nz;
  const outside = new Int32Array(n).fill(-1);
  const queue = new Int32Array(n);
  const free = (i: number) => labels[i] !== cls && outside[i] === -1;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const onBorder = x === 0 || y === 0 || z === 0 || x === nx - 1 || y === ny - 1 || z === nz - 1;
        const i = x + nx * (y + ny * z);
        if (onBorder && free(i)) flood(i, 0, free, outside, queue, nx, ny, nz);
      }
    }
  }
  let filled = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i] === 0 && outside[i] === -1) {
      labels[i] = cls;
      filled++;
    }
  }
  return filled;
}

function flood(seed: number, id: number, open: (i: number) => boolean, mark: Int32Array, queue: Int32Array, nx: number, ny: number, nz: number): number {
  let head = 0;
  let tail = 0;
  mark[seed] = id;
  queue[tail++] = seed;
  const plane = nx * ny;
  while (head < tail) {
    const i = queue[head++]!;
    const x = i % nx;
    const y = Math.floor(i / nx) % ny;
    const z = Math.floor(i / plane);
    const visit = (j: number) => {
      if (open(j)) {
        mark[j] = id;
        queue[tail++] = j;
      }
    };
    if (x > 0) visit(i - 1);
    if (x < nx - 1) visit(i + 1);
    if (y > 0) visit(i - nx);
    if (y < ny - 1) visit(i + nx);
    if (z > 0) visit(i - plane);
    if (z < nz - 1) visit(i + plane);
  }
  return tail;
}
