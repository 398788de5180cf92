/**
 * Our own forward-only walk over a DICOM Part 10 byte stream. It builds dicom-parser DataSets (so the
 * library's value accessors can be used) but decides the structure itself: every length is checked
 * against its container and the buffer, sequences nest at most limits.maxSequenceDepth deep (an explicit
 * stack, so no recursion), delimiters must carry length 0, OV/SV/UV take the 4-byte length form that
 * dicom-parser 1.8 misreads, and a body whose VR encoding contradicts its transfer syntax is read the way
 * it is actually encoded (as pydicom does). Every step consumes bytes or closes a container, so the walk
 * ends in time proportional to the file size.
 */
import dicomParser from 'dicom-parser';
import type { ByteArrayParser, DataSet, Element, Fragment } from 'dicom-parser';
import { GatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';

export interface Encoding {
  littleEndian: boolean;
  explicit: boolean;
}

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const KNOWN_VRS = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);
const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQ_END = 0xfffee0dd;
const PIXEL_DATA = 0x7fe00010;
const UNDEFINED = 0xffffffff;
/** No element of a file we accept is this long; such a length is damage, not a cut-off file. */
const ABSURD_LENGTH = 0x7ffffff0;

type DataSetCtor = new (parser: ByteArrayParser, bytes: Uint8Array, elements: Record<string, Element>) => DataSet;
const lib = dicomParser as unknown as { DataSet: DataSetCtor; littleEndianByteArrayParser: ByteArrayParser; bigEndianByteArrayParser: ByteArrayParser };

export interface WalkOptions {
  /** Stop at the first top-level element of another group (the file meta header is group 0002). */
  onlyGroup?: number;
  /**
   * Size of the whole file when `bytes` is only its head: the walk then ends at the top-level PixelData
   * (whose value may lie beyond the head), and anything else beyond the head is an error.
   */
  fileSize?: number;
}

/** Walks the elements of one data set from `start` to the end of `bytes`. */
export function walkDataSet(bytes: Uint8Array, start: number, enc: Encoding, limits: Limits, opts: WalkOptions = {}): { ds: DataSet; end: number } {
  return new Walker(bytes, limits, opts).run(start, enc);
}

/** Reads the element at `pos` as explicit (true) or implicit (false) VR, by whether bytes 4-5 name a VR. */
export function looksExplicit(bytes: Uint8Array, pos: number): boolean {
  if (pos + 6 > bytes.length) return true;
  return KNOWN_VRS.has(String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!));
}

/** Tag string as dicom-parser keys it: 'xggggeeee'. */
export function tagKey(tag: number): string {
  return `x${tag.toString(16).padStart(8, '0')}`;
}

// --- internal ---

interface ElementsFrame {
  kind: 'elements';
  elements: Record<string, Element>;
  /** Absolute end of a defined-length item or of the data, or null until an item delimiter. */
  end: number | null;
  enc: Encoding;
  depth: number;
  /** The item this data set belongs to (length filled in when it closes). */
  item?: Element;
}

interface ItemsFrame {
  kind: 'items';
  el: Element;
  end: number | null;
  enc: Encoding;
  depth: number;
}

type Frame = ElementsFrame | ItemsFrame;

class Walker {
  private readonly dv: DataView;
  private readonly onlyGroup: number | undefined;
  /** Logical end of the data: the file size, larger than bytes.length when only a head is given. */
  private readonly size: number;
  private readonly head: boolean;
  private done = false;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly limits: Limits,
    opts: WalkOptions,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.onlyGroup = opts.onlyGroup;
    this.size = Math.max(bytes.length, opts.fileSize ?? bytes.length);
    this.head = this.size > bytes.length;
  }

  run(start: number, enc: Encoding): { ds: DataSet; end: number } {
    const top: ElementsFrame = { kind: 'elements', elements: {}, end: this.size, enc, depth: 0 };
    const stack: Frame[] = [top];
    let pos = start;
    while (stack.length > 0 && !this.done) {
      const f = stack[stack.length - 1]!;
      if (f.kind === 'elements') pos = this.stepElements(f, stack, pos);
      else pos = this.stepItems(f, stack, pos);
    }
    return { ds: this.dataSet(top.elements, enc), end: pos };
  }

  private dataSet(elements: Record<string, Element>, enc: Encoding): DataSet {
    const ds = new lib.DataSet(enc.littleEndian ? lib.littleEndianByteArrayParser : lib.bigEndianByteArrayParser, this.bytes, elements);
    ds.warnings = [];
    return ds;
  }

  private u16(pos: number, le: boolean): number {
    return this.dv.getUint16(pos, le);
  }

  private u32(pos: number, le: boolean): number {
    return this.dv.getUint32(pos, le);
  }

  private tag(pos: number, le: boolean): number {
    return ((this.u16(pos, le) << 16) | this.u16(pos + 2, le)) >>> 0;
  }

  /** One element of a data set (or the close of the data set). */
  private stepElements(f: ElementsFrame, stack: Frame[], pos: number): number {
    const size = this.bytes.length;
    const le = f.enc.littleEndian;
    if (f.end !== null && pos >= f.end) {
      stack.pop();
      return pos;
    }
    if (this.head && pos + 12 > size) throw new GatedError('truncated', 'the head of the file ends before its PixelData');
    if (f.end === null && pos + 8 > size) throw new GatedError('truncated', `an item ends without its delimiter at byte ${pos}`);
    if (pos + 8 > (f.end ?? size)) {
      // a few stray bytes after the last element of the file are padding; inside an item they are damage
      if (stack.length === 1) {
        stack.pop();
        return size;
      }
      throw new GatedError('bad_length', `an item ends in the middle of an element header at byte ${pos}`);
    }
    const tag = this.tag(pos, le);
    if (this.onlyGroup !== undefined && stack.length === 1 && tag >>> 16 !== this.onlyGroup) {
      stack.pop();
      return pos;
    }
    if (tag === ITEM_END) {
      if (f.end !== null) throw new GatedError('bad_length', `item delimiter at byte ${pos} outside an undefined-length item`);
      this.zeroLength(pos, le, 'item delimiter');
      if (f.item) f.item.length = pos + 8 - f.item.dataOffset;
      stack.pop();
      return pos + 8;
    }
    if (tag === ITEM || tag === SEQ_END) throw new GatedError('bad_length', `a ${tag === ITEM ? 'sequence item' : 'sequence delimiter'} stands where an element was expected (byte ${pos})`);

    let vr: string | undefined;
    let length: number;
    let dataOffset: number;
    if (f.enc.explicit) {
      vr = String.fromCharCode(this.bytes[pos + 4]!, this.bytes[pos + 5]!);
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > size) throw new GatedError('truncated', `the file ends inside the header of element ${tagKey(tag)}`);
        length = this.u32(pos + 8, le);
        dataOffset = pos + 12;
      } else {
        length = this.u16(pos + 6, le);
        dataOffset = pos + 8;
      }
    } else {
      length = this.u32(pos + 4, le);
      dataOffset = pos + 8;
    }
    const el: Element = { tag: tagKey(tag), length, dataOffset };
    if (vr !== undefined) el.vr = vr;
    f.elements[el.tag] = el;
    const limit = f.end ?? this.size;

    if (length === UNDEFINED) {
      el.hadUndefinedLength = true;
      // encapsulated pixel data also occurs nested (icon images); only the top-level one is the image
      if (tag === PIXEL_DATA && (vr === undefined || vr === 'OB' || vr === 'OW' || vr === 'UN')) {
        el.encapsulatedPixelData = true;
        if (this.head && f.depth === 0) {
          // the fragments lie beyond the head; the header is complete
          this.done = true;
          return dataOffset;
        }
        return this.encapsulated(el, le);
      }
      if (vr === undefined || vr === 'SQ' || vr === 'UN') {
        // implicit VR: undefined length means a sequence; explicit UN with undefined length is an
        // implicit-VR little-endian sequence (CP-246)
        const enc = vr === 'UN' ? { littleEndian: true, explicit: false } : f.enc;
        this.pushSequence(stack, el, dataOffset, null, enc, f.depth);
        return dataOffset;
      }
      throw new GatedError('bad_length', `element ${el.tag} (${vr}) has an undefined length, which only sequences and pixel data may have`);
    }
    this.checkFits(el.tag, dataOffset, length, limit);
    if (this.head && dataOffset + length > size) {
      if (tag !== PIXEL_DATA || f.depth !== 0) throw new GatedError('truncated', `element ${el.tag} runs past the head of the file`);
      this.done = true;
      return dataOffset + length;
    }
    if (vr === 'SQ' || (vr === undefined && length >= 8 && this.tag(dataOffset, le) === ITEM && tag !== PIXEL_DATA)) {
      el.items = [];
      this.pushSequence(stack, el, dataOffset, dataOffset + length, f.enc, f.depth);
      return dataOffset;
    }
    return dataOffset + length;
  }

  /** One item of a sequence (or the close of the sequence). */
  private stepItems(f: ItemsFrame, stack: Frame[], pos: number): number {
    const size = this.bytes.length;
    const le = f.enc.littleEndian;
    if (f.end !== null && pos >= f.end) {
      stack.pop();
      return pos;
    }
    if (pos + 8 > (f.end ?? size)) {
      throw new GatedError(f.end === null || f.end > size ? 'truncated' : 'bad_length', `sequence ${f.el.tag} ends inside an item header at byte ${pos}`);
    }
    const tag = this.tag(pos, le);
    const length = this.u32(pos + 4, le);
    if (tag === SEQ_END && f.end === null) {
      this.zeroLength(pos, le, 'sequence delimiter');
      f.el.length = pos + 8 - f.el.dataOffset;
      stack.pop();
      return pos + 8;
    }
    if (tag !== ITEM) throw new GatedError('bad_length', `sequence ${f.el.tag} holds tag ${tagKey(tag)} where an item was expected (byte ${pos})`);
    const item: Element = { tag: tagKey(tag), length, dataOffset: pos + 8 };
    f.el.items!.push(item);
    const frame: ElementsFrame = { kind: 'elements', elements: {}, end: null, enc: f.enc, depth: f.depth, item };
    if (length === UNDEFINED) {
      item.hadUndefinedLength = true;
    } else {
      this.checkFits(`item of ${f.el.tag}`, pos + 8, length, f.end ?? size);
      frame.end = pos + 8 + length;
    }
    item.dataSet = this.dataSet(frame.elements, f.enc);
    stack.push(frame);
    return pos + 8;
  }

  private pushSequence(stack: Frame[], el: Element, start: number, end: number | null, enc: Encoding, depth: number): void {
    if (depth + 1 > this.limits.maxSequenceDepth) {
      throw new GatedError('nesting', `sequences nest deeper than ${this.limits.maxSequenceDepth} levels (at byte ${start})`, { details: { limit: this.limits.maxSequenceDepth } });
    }
    el.items = [];
    stack.push({ kind: 'items', el, end, enc, depth: depth + 1 });
  }

  /** Encapsulated pixel data: a Basic Offset Table item, fragments, then the sequence delimiter. */
  private encapsulated(el: Element, le: boolean): number {
    const size = this.bytes.length;
    const fragments: Fragment[] = [];
    let pos = el.dataOffset;
    let base = -1;
    for (;;) {
      if (pos + 8 > size) throw new GatedError('truncated', 'encapsulated pixel data ends without its sequence delimiter');
      const tag = this.tag(pos, le);
      const length = this.u32(pos + 4, le);
      if (tag === SEQ_END) {
        // a delimiter length of 0xFFFFFFFF is seen in the wild here; the delimiter has no value either way
        if (length !== 0 && length !== UNDEFINED) throw new GatedError('bad_length', `pixel data sequence delimiter has length ${length}`);
        el.length = pos - el.dataOffset;
        el.fragments = fragments;
        return pos + 8;
      }
      if (tag !== ITEM) throw new GatedError('bad_length', `encapsulated pixel data holds tag ${tagKey(tag)} where a fragment was expected (byte ${pos})`);
      if (length === UNDEFINED) throw new GatedError('bad_length', 'a pixel data fragment has an undefined length');
      this.checkFits('pixel data fragment', pos + 8, length, size);
      if (base < 0) {
        // first item: the Basic Offset Table (often empty)
        const n = Math.floor(length / 4);
        el.basicOffsetTable = Array.from({ length: n }, (_, i) => this.u32(pos + 8 + 4 * i, le));
        base = pos + 8 + length;
      } else {
        fragments.push({ offset: pos - base, position: pos + 8, length });
      }
      pos += 8 + length;
    }
  }

  private zeroLength(pos: number, le: boolean, what: string): void {
    const length = this.u32(pos + 4, le);
    if (length !== 0) throw new GatedError('bad_length', `${what} at byte ${pos} has length ${length}; 0 is required`);
  }

  /** A value past the end of the data is a cut-off file (unless absurdly long); past its container, damage. */
  private checkFits(what: string, offset: number, length: number, limit: number): void {
    if (offset + length <= limit) return;
    const absurd = length >= ABSURD_LENGTH || length > this.limits.maxFileBytes;
    const pastEnd = offset + length > this.size;
    throw new GatedError(!absurd && pastEnd ? 'truncated' : 'bad_length', `${what}: ${length} bytes at ${offset} run past ${pastEnd ? 'the end of the data' : `its container (ends at ${limit})`}`, {
      details: { length, offset },
    });
  }
}
