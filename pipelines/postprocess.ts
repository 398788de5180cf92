/**
 * Label-map clean-up: keep the largest 6-connected 3D component of each class (spurious islands far from
 * the organ are the classic failure of slice-wise models), and fill enclosed holes of each class.
 *
 * Both are connected-component problems solved on runs rather than voxels: each row of the class's bounding
 * box is cut into runs of equal membership, runs that overlap a run of the row above or of the slice below are
 * joined with union-find, and the voxels are touched once to find the runs and once to change them. A brain
 * mask of a 512×512×300 volume has a few hundred thousand runs against tens of millions of voxels, so this is
 * an order of magnitude faster than a voxel flood, with the same result.
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
  const r = runsOf(labels, nx, ny, box, cls, true);
  const size = new Float64Array(r.count);
  for (let k = 0; k < r.count; k++) {
    const root = r.find(k);
    size[root] = size[root]! + r.xe[k]! - r.xs[k]! + 1;
  }
  // a root is its component's first run in raster order, so the first maximum is the component whose first
  // voxel comes first — the one a raster-order scan keeps on a tie
  let best = 0;
  for (let k = 1; k < r.count; k++) if (size[k]! > size[best]!) best = k;
  let removed = 0;
  for (let k = 0; k < r.count; k++) {
    if (r.find(k) === best) continue;
    const row = r.rowOf(k);
    labels.fill(0, row + r.xs[k]!, row + r.xe[k]! + 1);
    removed += r.xe[k]! - r.xs[k]! + 1;
  }
  return removed;
}

/** Background regions of a class's mask that do not touch the volume border become that class. */
export function fillHoles(labels: Uint8Array | Uint16Array, shape: readonly number[], cls: number): number {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const box = bbox(labels, nx, ny, nz, cls, 1);
  if (!box) return 0;
  // everything outside the box is outside the mask: a region of non-class voxels that reaches a face of the
  // box is open; the others are holes
  const r = runsOf(labels, nx, ny, box, cls, false);
  const open = new Uint8Array(r.count);
  const by = box.y1 - box.y0 + 1;
  const bz = box.z1 - box.z0 + 1;
  for (let k = 0; k < r.count; k++) {
    const row = r.row[k]!;
    const y = row % by;
    const z = (row - y) / by;
    if (y === 0 || y === by - 1 || z === 0 || z === bz - 1 || r.xs[k] === box.x0 || r.xe[k] === box.x1) open[r.find(k)] = 1;
  }
  let filled = 0;
  for (let k = 0; k < r.count; k++) {
    if (open[r.find(k)]) continue;
    const base = r.rowOf(k);
    for (let i = base + r.xs[k]!, end = base + r.xe[k]!; i <= end; i++) {
      if (labels[i] === 0) {
        labels[i] = cls;
        filled++;
      }
    }
  }
  return filled;
}

// --- internal ---

function bbox(labels: Uint8Array | Uint16Array, nx: number, ny: number, nz: number, cls: number, margin: number): Box | null {
  const w = words(labels);
  let x0 = nx;
  let x1 = -1;
  let y0 = ny;
  let y1 = -1;
  let z0 = nz;
  let z1 = -1;
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++, i += nx) {
      // the first and last class voxel of the row are all a box needs
      const a = seek(labels, w, i, i + nx, cls, true) - i;
      if (a === nx) continue;
      let b = nx - 1;
      while (labels[i + b] !== cls) b--;
      if (a < x0) x0 = a;
      if (b > x1) x1 = b;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      if (z < z0) z0 = z;
      z1 = z;
    }
  }
  if (x1 < 0) return null;
  return { x0: Math.max(0, x0 - margin), x1: Math.min(nx - 1, x1 + margin), y0: Math.max(0, y0 - margin), y1: Math.min(ny - 1, y1 + margin), z0: Math.max(0, z0 - margin), z1: Math.min(nz - 1, z1 + margin) };
}

/** Runs of one row-membership inside a box, joined into 6-connected components. */
class Runs {
  count = 0;
  xs: Int32Array;
  xe: Int32Array;
  /** Box row (y - y0) + by·(z - z0) of each run. */
  row: Int32Array;
  parent: Int32Array;

  constructor(
    capacity: number,
    readonly nx: number,
    readonly ny: number,
    readonly box: Box,
  ) {
    this.xs = new Int32Array(capacity);
    this.xe = new Int32Array(capacity);
    this.row = new Int32Array(capacity);
    this.parent = new Int32Array(capacity);
  }

  add(xs: number, xe: number, row: number): void {
    if (this.count === this.xs.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.xs = grow(this.xs);
      this.xe = grow(this.xe);
      this.row = grow(this.row);
      this.parent = grow(this.parent);
    }
    const k = this.count++;
    this.xs[k] = xs;
    this.xe[k] = xe;
    this.row[k] = row;
    this.parent[k] = k;
  }

  find(k: number): number {
    const p = this.parent;
    while (p[k] !== k) {
      p[k] = p[p[k]!]!; // path halving
      k = p[k]!;
    }
    return k;
  }

  /** The smaller root becomes the parent, so every root is its component's first run. */
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra < rb) this.parent[rb] = ra;
    else if (rb < ra) this.parent[ra] = rb;
  }

  /** Index in the volume of x = 0 on a run's row. */
  rowOf(k: number): number {
    const by = this.box.y1 - this.box.y0 + 1;
    const row = this.row[k]!;
    const y = row % by;
    return this.nx * (this.box.y0 + y + this.ny * (this.box.z0 + (row - y) / by));
  }
}

function runsOf(labels: Uint8Array | Uint16Array, nx: number, ny: number, box: Box, cls: number, inClass: boolean): Runs {
  const by = box.y1 - box.y0 + 1;
  const bz = box.z1 - box.z0 + 1;
  const r = new Runs(Math.max(1024, 4 * by * bz), nx, ny, box);
  const w = words(labels);
  // first run of each box row; rows are stored in order, so a row's runs are rowStart[row] .. rowStart[row + 1]
  const rowStart = new Int32Array(by * bz + 1);
  for (let z = 0; z < bz; z++) {
    for (let y = 0; y < by; y++) {
      const row = y + by * z;
      rowStart[row] = r.count;
      const base = nx * (box.y0 + y + ny * (box.z0 + z));
      const end = base + box.x1 + 1;
      for (let i = base + box.x0; i < end; ) {
        const s = seek(labels, w, i, end, cls, inClass);
        if (s === end) break;
        i = seek(labels, w, s, end, cls, !inClass);
        r.add(s - base, i - base - 1, row);
      }
      const last = r.count;
      if (y > 0) joinRows(r, rowStart[row - 1]!, rowStart[row]!, rowStart[row]!, last);
      if (z > 0) joinRows(r, rowStart[row - by]!, rowStart[row - by + 1]!, rowStart[row]!, last);
    }
  }
  return r;
}

/**
 * First index in [i, end) whose membership (label === cls) is `want`, or end. Byte labels are tested four at a
 * time where aligned: XOR with the class in every byte leaves a zero byte exactly where a label is the class.
 */
function seek(labels: Uint8Array | Uint16Array, w: Uint32Array | null, i: number, end: number, cls: number, want: boolean): number {
  if (w && end - i >= 8) {
    for (; i & 3; i++) if ((labels[i] === cls) === want) return i;
    const pat = cls * 0x01010101;
    for (; i + 4 <= end; i += 4) {
      const v = w[i >> 2]! ^ pat;
      // some byte is the class / some byte is not the class
      if (want ? ((v - 0x01010101) & ~v & 0x80808080) !== 0 : v !== 0) break;
    }
  }
  for (; i < end; i++) if ((labels[i] === cls) === want) return i;
  return end;
}

/** A 32-bit view of a byte label map when it is aligned (the trailing 0-3 bytes are reached byte by byte). */
function words(labels: Uint8Array | Uint16Array): Uint32Array | null {
  return labels instanceof Uint8Array && labels.byteOffset % 4 === 0 ? new Uint32Array(labels.buffer, labels.byteOffset, labels.length >> 2) : null;
}

/** Joins each run of [a0, a1) with the runs of [b0, b1) it shares an x with (both lists sorted by x). */
function joinRows(r: Runs, a0: number, a1: number, b0: number, b1: number): void {
  let i = a0;
  let j = b0;
  while (i < a1 && j < b1) {
    if (r.xs[i]! <= r.xe[j]! && r.xs[j]! <= r.xe[i]!) r.union(i, j);
    if (r.xe[i]! < r.xe[j]!) i++;
    else j++;
  }
}
