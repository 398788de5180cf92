/**
 * Label-map clean-up: keep the largest 6-connected 3D component of each class (spurious islands far from
 * the organ are the classic failure of slice-wise models), and fill enclosed holes of each class. Work stays
 * inside the class's bounding box (plus one voxel), with one byte of scratch per voxel of the box and a
 * growable queue, and the flood loop is written out so a 512×512×300 map takes seconds, not tens of seconds.
 */

interface Box {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  z0: number;
  z1: number;
}

export function keepLargestComponent(labels: Uint8Array | Uint16Array, shape: readonly number[], cls: number): number {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const box = bbox(labels, nx, ny, nz, cls, 0);
  if (!box) return 0;
  const f = new Flood(labels, nx, ny, box);
  let bestSeed = -1;
  let bestSize = 0;
  for (let z = box.z0; z <= box.z1; z++) {
    for (let y = box.y0; y <= box.y1; y++) {
      for (let x = box.x0; x <= box.x1; x++) {
        const i = x + nx * (y + ny * z);
        if (labels[i] !== cls || f.mark[f.local(x, y, z)] !== 0) continue;
        const size = f.run(x, y, z, cls, true, 0, 1);
        if (size > bestSize) {
          bestSize = size;
          bestSeed = i;
        }
      }
    }
  }
  // a second flood from the largest component's seed marks it 2; every other voxel of the class goes
  const sx = bestSeed % nx;
  const sy = Math.floor(bestSeed / nx) % ny;
  const sz = Math.floor(bestSeed / (nx * ny));
  f.run(sx, sy, sz, cls, true, 1, 2);
  let removed = 0;
  for (let z = box.z0; z <= box.z1; z++) {
    for (let y = box.y0; y <= box.y1; y++) {
      for (let x = box.x0; x <= box.x1; x++) {
        const i = x + nx * (y + ny * z);
        if (labels[i] === cls && f.mark[f.local(x, y, z)] !== 2) {
          labels[i] = 0;
          removed++;
        }
      }
    }
  }
  return removed;
}

/** Background regions of a class's mask that do not touch the volume border become that class. */
export function fillHoles(labels: Uint8Array | Uint16Array, shape: readonly number[], cls: number): number {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const box = bbox(labels, nx, ny, nz, cls, 1);
  if (!box) return 0;
  const f = new Flood(labels, nx, ny, box);
  // everything outside the box is outside the mask; flood the non-class voxels from the box's faces
  for (let z = box.z0; z <= box.z1; z++) {
    for (let y = box.y0; y <= box.y1; y++) {
      for (let x = box.x0; x <= box.x1; x++) {
        const face = x === box.x0 || x === box.x1 || y === box.y0 || y === box.y1 || z === box.z0 || z === box.z1;
        if (!face) {
          x = box.x1 - 1;
          continue;
        }
        if (labels[x + nx * (y + ny * z)] !== cls && f.mark[f.local(x, y, z)] === 0) f.run(x, y, z, cls, false, 0, 1);
      }
    }
  }
  let filled = 0;
  for (let z = box.z0; z <= box.z1; z++) {
    for (let y = box.y0; y <= box.y1; y++) {
      for (let x = box.x0; x <= box.x1; x++) {
        const i = x + nx * (y + ny * z);
        if (labels[i] === 0 && f.mark[f.local(x, y, z)] === 0) {
          labels[i] = cls;
          filled++;
        }
      }
    }
  }
  return filled;
}

// --- internal ---

function bbox(labels: ArrayLike<number>, nx: number, ny: number, nz: number, cls: number, margin: number): Box | null {
  let x0 = nx;
  let x1 = -1;
  let y0 = ny;
  let y1 = -1;
  let z0 = nz;
  let z1 = -1;
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (labels[i] !== cls) continue;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        if (z < z0) z0 = z;
        if (z > z1) z1 = z;
      }
    }
  }
  if (x1 < 0) return null;
  return { x0: Math.max(0, x0 - margin), x1: Math.min(nx - 1, x1 + margin), y0: Math.max(0, y0 - margin), y1: Math.min(ny - 1, y1 + margin), z0: Math.max(0, z0 - margin), z1: Math.min(nz - 1, z1 + margin) };
}

/** 6-connected flood inside a box, marking a byte per box voxel. */
class Flood {
  readonly mark: Uint8Array;
  readonly #bx: number;
  readonly #by: number;
  #queue = new Int32Array(1 << 16);

  constructor(
    readonly labels: Uint8Array | Uint16Array,
    readonly nx: number,
    readonly ny: number,
    readonly box: Box,
  ) {
    this.#bx = box.x1 - box.x0 + 1;
    this.#by = box.y1 - box.y0 + 1;
    this.mark = new Uint8Array(this.#bx * this.#by * (box.z1 - box.z0 + 1));
  }

  local(x: number, y: number, z: number): number {
    return x - this.box.x0 + this.#bx * (y - this.box.y0 + this.#by * (z - this.box.z0));
  }

  /** Floods from (x, y, z) over voxels whose (label === cls) equals `inClass` and whose mark is `from`; marks `to`. */
  run(x: number, y: number, z: number, cls: number, inClass: boolean, from: number, to: number): number {
    const { labels, nx, ny, mark, box } = this;
    const bx = this.#bx;
    const bxy = bx * this.#by;
    const plane = nx * ny;
    let q = this.#queue;
    // the queue holds pairs (global index, box index); a ring that doubles when full
    let head = 0;
    let size = 0;
    const push = (g: number, l: number) => {
      if (size * 2 + 2 > q.length) {
        const next = new Int32Array(q.length * 2);
        for (let k = 0; k < size; k++) {
          const s = ((head + k) * 2) % q.length;
          next[2 * k] = q[s]!;
          next[2 * k + 1] = q[s + 1]!;
        }
        q = next;
        this.#queue = q;
        head = 0;
      }
      const s = ((head + size) * 2) % q.length;
      q[s] = g;
      q[s + 1] = l;
      size++;
    };
    let count = 1;
    const g0 = x + nx * (y + ny * z);
    const l0 = this.local(x, y, z);
    mark[l0] = to;
    push(g0, l0);
    while (size > 0) {
      const s = (head * 2) % q.length;
      const g = q[s]!;
      const l = q[s + 1]!;
      head = (head + 1) % (q.length / 2);
      size--;
      const lx = l % bx;
      const ly = Math.floor(l / bx) % this.#by;
      const lz = Math.floor(l / bxy);
      // six neighbours, each: inside the box, right class membership, unmarked
      if (lx > 0 && mark[l - 1] === from && (labels[g - 1] === cls) === inClass) { mark[l - 1] = to; push(g - 1, l - 1); count++; }
      if (lx < bx - 1 && mark[l + 1] === from && (labels[g + 1] === cls) === inClass) { mark[l + 1] = to; push(g + 1, l + 1); count++; }
      if (ly > 0 && mark[l - bx] === from && (labels[g - nx] === cls) === inClass) { mark[l - bx] = to; push(g - nx, l - bx); count++; }
      if (ly < this.#by - 1 && mark[l + bx] === from && (labels[g + nx] === cls) === inClass) { mark[l + bx] = to; push(g + nx, l + bx); count++; }
      if (lz > 0 && mark[l - bxy] === from && (labels[g - plane] === cls) === inClass) { mark[l - bxy] = to; push(g - plane, l - bxy); count++; }
      if (lz < box.z1 - box.z0 && mark[l + bxy] === from && (labels[g + plane] === cls) === inClass) { mark[l + bxy] = to; push(g + plane, l + bxy); count++; }
    }
    return count;
  }
}
