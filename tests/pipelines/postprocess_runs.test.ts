/**
 * The run-based clean-up against the voxel flood it replaced (kept here verbatim as the reference): same labels
 * and same counts on random multi-class volumes with islands, ties, holes and classes touching the border.
 */
import { expect, it } from 'vitest';
import { fillHoles, keepLargestComponent } from '../../pipelines/postprocess.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Blobs of 1..K-1 on a background, plus salt noise: many components, holes and border contacts. */
function volume(seed: number, shape: [number, number, number], K: number): Uint8Array {
  const r = rng(seed);
  const [nx, ny, nz] = shape;
  const out = new Uint8Array(nx * ny * nz);
  for (let b = 0; b < 12; b++) {
    const c = 1 + Math.floor(r() * (K - 1));
    const [cx, cy, cz, rad] = [r() * nx, r() * ny, r() * nz, 1 + r() * 5];
    for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) if ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < rad * rad) out[x + nx * (y + ny * z)] = c;
  }
  // thin volumes get more salt so that they too have several components
  const salt = Math.min(nx, ny, nz) === 1 ? 0.4 : 0.04;
  for (let i = 0; i < out.length; i++) if (r() < salt) out[i] = Math.floor(r() * K);
  return out;
}

for (const [seed, shape, K] of [[1, [19, 13, 11], 2], [2, [24, 9, 16], 3], [3, [7, 31, 5], 2], [4, [16, 16, 16], 4], [5, [40, 1, 1], 2], [6, [1, 1, 30], 2]] as [number, [number, number, number], number][]) {
  it(`matches the voxel flood (seed ${seed}, ${shape.join('x')}, ${K} classes)`, () => {
    const v = volume(seed, shape, K);
    const a = v.slice();
    const b = v.slice();
    for (let c = 1; c < K; c++) {
      expect(keepLargestComponent(a, shape, c)).toBe(floodLargest(b, shape, c));
      expect(fillHoles(a, shape, c)).toBe(floodFill(b, shape, c));
    }
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(v))).toBe(false); // the clean-up changed something
  });
}

it('keeps the first of two equally large components, as a raster scan does', () => {
  // two 2-voxel components; the later one is met first on its second voxel's row, not its first
  const shape = [4, 2, 1];
  const a = Uint8Array.from([0, 0, 0, 1, 1, 0, 0, 1]);
  const b = a.slice();
  expect(keepLargestComponent(a, shape, 1)).toBe(floodLargest(b, shape, 1));
  expect(Array.from(a)).toEqual(Array.from(b));
});

it('fills a hole in 16-bit labels and leaves other classes in it alone', () => {
  const shape = [5, 5, 3];
  const a = new Uint16Array(75).fill(0);
  for (let y = 1; y < 4; y++) for (let x = 1; x < 4; x++) for (let z = 0; z < 3; z++) a[x + 5 * (y + 5 * z)] = 300;
  a[2 + 5 * (2 + 5 * 1)] = 0;
  a[2 + 5 * (2 + 5 * 0)] = 7; // another class on the hole's edge
  a[2 + 5 * (2 + 5 * 2)] = 0; // on the last slice: it touches the volume's border, so it is no hole
  const b = a.slice();
  expect(fillHoles(a, shape, 300)).toBe(floodFill(b, shape, 300));
  expect(Array.from(a)).toEqual(Array.from(b));
});

// --- the voxel flood this replaced ---
interface Box {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  z0: number;
  z1: number;
}

function floodLargest(labels: Uint8Array | Uint16Array, shape: readonly number[], cls: number): number {
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
function floodFill(labels: Uint8Array | Uint16Array, shape: readonly number[], cls: number): number {
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
