/**
 * A small explicit-VR little-endian DICOM encoder for the objects we write (Part 10 file with meta
 * header): elements in tag order, sequences and items with undefined length, values padded to even
 * length as PS3.5 requires.
 */
import { GatedError } from '../../core/errors.ts';
import { concatBytes } from '../bytes.ts';

export type Value = string | number | number[] | Uint8Array | Item[] | undefined;
/** 'GGGGEEEE' -> [VR, value]; typed loosely so nested literals need no tuple annotations. */
export type Item = Record<string, readonly unknown[]>;

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV']);

export function encodePart10(meta: Item, dataset: Item): Uint8Array {
  const metaBody = encodeItem(meta);
  const groupLength = element('00020000', 'UL', metaBody.length);
  return concatBytes([new Uint8Array(128), new TextEncoder().encode('DICM'), groupLength, metaBody, encodeItem(dataset)]);
}

export function encodeItem(item: Item): Uint8Array {
  const tags = Object.keys(item).sort();
  return concatBytes(tags.map((t) => {
    const [vr, value] = item[t] as [string, Value];
    return element(t, vr, value);
  }));
}

// --- internal ---

function element(tag: string, vr: string, value: Value): Uint8Array {
  if (!/^[0-9A-F]{8}$/.test(tag)) throw new GatedError('internal', `bad tag ${tag}`);
  const group = parseInt(tag.slice(0, 4), 16);
  const elem = parseInt(tag.slice(4), 16);
  const head = (len: number, undefinedLength = false) => {
    const long = LONG_VRS.has(vr);
    const h = new Uint8Array(long ? 12 : 8);
    const dv = new DataView(h.buffer);
    dv.setUint16(0, group, true);
    dv.setUint16(2, elem, true);
    h[4] = vr.charCodeAt(0);
    h[5] = vr.charCodeAt(1);
    if (long) dv.setUint32(8, undefinedLength ? 0xffffffff : len, true);
    else {
      if (len > 0xffff) throw new GatedError('internal', `value of ${tag} too long for ${vr}`);
      dv.setUint16(6, len, true);
    }
    return h;
  };
  if (vr === 'SQ') {
    const items = (value as Item[] | undefined) ?? [];
    const parts: Uint8Array[] = [head(0, true)];
    for (const it of items) {
      parts.push(delim(0xe000, 0xffffffff), encodeItem(it), delim(0xe00d, 0));
    }
    parts.push(delim(0xe0dd, 0));
    return concatBytes(parts);
  }
  const body = encodeValue(vr, value);
  return concatBytes([head(body.length), body]);
}

function delim(elem: number, len: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 0xfffe, true);
  dv.setUint16(2, elem, true);
  dv.setUint32(4, len, true);
  return b;
}

function encodeValue(vr: string, value: Value): Uint8Array {
  if (value === undefined) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value.length % 2 ? concatBytes([value, new Uint8Array(1)]) : value;
  const nums = typeof value === 'number' ? [value] : Array.isArray(value) ? (value as number[]) : undefined;
  const binary: Record<string, [number, (dv: DataView, o: number, v: number) => void]> = {
    US: [2, (dv, o, v) => dv.setUint16(o, v, true)],
    SS: [2, (dv, o, v) => dv.setInt16(o, v, true)],
    UL: [4, (dv, o, v) => dv.setUint32(o, v, true)],
    SL: [4, (dv, o, v) => dv.setInt32(o, v, true)],
    FL: [4, (dv, o, v) => dv.setFloat32(o, v, true)],
    FD: [8, (dv, o, v) => dv.setFloat64(o, v, true)],
  };
  if (vr === 'AT') {
    const tags = (nums ?? []) as number[];
    const b = new Uint8Array(tags.length * 4);
    const dv = new DataView(b.buffer);
    tags.forEach((t, i) => {
      dv.setUint16(4 * i, t >>> 16, true);
      dv.setUint16(4 * i + 2, t & 0xffff, true);
    });
    return b;
  }
  const bin = binary[vr];
  if (bin) {
    const list = nums ?? [];
    const b = new Uint8Array(list.length * bin[0]);
    const dv = new DataView(b.buffer);
    list.forEach((v, i) => bin[1](dv, i * bin[0], v));
    return b;
  }
  const s = typeof value === 'string' ? value : nums!.map((n) => (vr === 'DS' ? formatDS(n) : String(n))).join('\\');
  // Padding goes by encoded bytes: a UTF-8 name such as 'Müller' has more bytes than characters.
  const bytes = new TextEncoder().encode(s);
  if (bytes.length % 2 === 0) return bytes;
  const padded = new Uint8Array(bytes.length + 1);
  padded.set(bytes);
  padded[bytes.length] = vr === 'UI' ? 0 : 0x20;
  return padded;
}

/** Decimal strings are limited to 16 characters. */
export function formatDS(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return String(n);
  for (let p = 15; p > 0; p--) {
    const s = String(Number(n.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  return n.toExponential(8);
}


