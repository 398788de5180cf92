/**
 * Splits encapsulated PixelData into one codestream per frame without trusting the offset tables: the
 * Extended Offset Table (7FE0,0001/0002) or the Basic Offset Table is used only when it is consistent
 * with the fragments; otherwise one fragment per frame, or fragments grouped by each codec's
 * start-of-codestream marker.
 */
import { GatedError } from '../../core/errors.ts';
import type { DataSet, Element } from './dataset.ts';
import type { Codec } from './transfer_syntax.ts';

export function splitFrames(ds: DataSet, el: Element, nFrames: number, codec: Codec): Uint8Array[] {
  const frags = el.fragments ?? [];
  const bytes = (i: number) => ds.byteArray.subarray(frags[i]!.position, frags[i]!.position + frags[i]!.length);
  const join = (from: number, to: number) => {
    if (to - from === 1) return bytes(from);
    let n = 0;
    for (let i = from; i < to; i++) n += frags[i]!.length;
    const out = new Uint8Array(n);
    for (let i = from, o = 0; i < to; o += frags[i]!.length, i++) out.set(bytes(i), o);
    return out;
  };
  if (frags.length === 0) throw new GatedError('bad_length', 'encapsulated PixelData holds no fragments');
  const eot = extendedOffsets(ds, nFrames);
  if (eot) {
    // the Extended Offset Table gives each frame's byte range; it must match whole fragments
    const starts = eot.offsets.map((off) => frags.findIndex((f) => f.offset === off));
    if (starts.every((s, i) => s >= 0 && (i === 0 || s > starts[i - 1]!))) {
      return starts.map((s, i) => {
        const frame = join(s, i + 1 < starts.length ? starts[i + 1]! : frags.length);
        const len = eot.lengths?.[i];
        return len !== undefined && len <= frame.length ? frame.subarray(0, len) : frame;
      });
    }
    throw new GatedError('bad_length', 'the Extended Offset Table (7FE0,0001) does not match the pixel data fragments');
  }
  if (nFrames === 1) return [join(0, frags.length)];
  if (frags.length === nFrames) return frags.map((_, i) => bytes(i));

  const bot = el.basicOffsetTable ?? [];
  if (bot.length === nFrames && bot[0] === 0) {
    const starts = bot.map((off) => frags.findIndex((f) => f.offset === off));
    if (starts.every((s, i) => s >= 0 && (i === 0 || s > starts[i - 1]!))) {
      return starts.map((s, i) => join(s, i + 1 < starts.length ? starts[i + 1]! : frags.length));
    }
  }
  const starts: number[] = [];
  for (let i = 0; i < frags.length; i++) if (startsCodestream(bytes(i), codec)) starts.push(i);
  if (starts.length === nFrames && starts[0] === 0) return starts.map((s, i) => join(s, i + 1 < starts.length ? starts[i + 1]! : frags.length));
  throw new GatedError('decode_failed', `cannot split ${frags.length} fragments into ${nFrames} frames (no usable offset table or markers)`);
}

/** (7FE0,0001) offsets and (7FE0,0002) lengths: one unsigned 64-bit value per frame, or absent. */
function extendedOffsets(ds: DataSet, nFrames: number): { offsets: number[]; lengths: number[] | undefined } | undefined {
  const read = (tag: string): number[] | undefined => {
    const el = ds.elements[tag];
    if (!el || el.length === 0) return undefined;
    if (el.length !== nFrames * 8) throw new GatedError('bad_length', `${tag === 'x7fe00001' ? 'Extended Offset Table' : 'Extended Offset Table Lengths'} has ${el.length} bytes; ${nFrames * 8} expected for ${nFrames} frames`);
    const dv = new DataView(ds.byteArray.buffer, ds.byteArray.byteOffset + el.dataOffset, el.length);
    return Array.from({ length: nFrames }, (_, i) => Number(dv.getBigUint64(8 * i, true)));
  };
  const offsets = read('x7fe00001');
  return offsets ? { offsets, lengths: read('x7fe00002') } : undefined;
}

function startsCodestream(b: Uint8Array, codec: Codec): boolean {
  if (b.length < 4) return false;
  if (codec === 'j2k' || codec === 'htj2k') return (b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51) || (b[4] === 0x6a && b[5] === 0x50);
  if (codec === 'rle') return false;
  return b[0] === 0xff && b[1] === 0xd8;
}
