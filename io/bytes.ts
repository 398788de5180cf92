/** Byte-level helpers shared by the readers and writers. */

/** Reverses the byte order of each `width`-byte element in place (big-endian data on a little-endian host). */
export function swapBytes(b: Uint8Array, width: number): void {
  for (let i = 0; i + width <= b.length; i += width) {
    for (let j = 0; j < width / 2; j++) {
      const t = b[i + j]!;
      b[i + j] = b[i + width - 1 - j]!;
      b[i + width - 1 - j] = t;
    }
  }
}

/** One buffer holding the parts back to back. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
