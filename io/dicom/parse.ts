/**
 * One DICOM Part 10 file → DicomObject: attributes, per-frame geometry (classic or enhanced multi-frame
 * functional groups) and decoded stored pixel values. Sizes are checked against the header and the
 * limits before any pixel buffer is allocated.
 */
import { GatedError } from '../../core/errors.ts';
import type { Limits } from '../../core/limits.ts';
import type { Vec3 } from '../geometry.ts';
import { item, num, nums, readDicomFile, str, us, type DataSet } from './dataset.ts';
import { decodePixels } from './pixels.ts';
import { splitFrames } from './frames.ts';
import type { Codec, TransferSyntax } from './transfer_syntax.ts';
import type { DicomObject, FrameGeometry } from './types.ts';

export interface ParseOptions {
  limits: Limits;
  name: string;
  index: number;
  /** Size of the whole file when `bytes` is only its head (header parse only). */
  fileSize?: number;
  /** Decoded pixels may be written into this buffer, reused from object to object (see decodePixels). */
  scratch?: { buf: Uint8Array };
}

export type DicomHeader = Omit<DicomObject, 'pixels'>;

const PIXEL_DATA = 'x7fe00010';
const PATIENT_TAGS: [string, string][] = [
  ['PatientName', 'x00100010'],
  ['PatientID', 'x00100020'],
  ['PatientBirthDate', 'x00100030'],
  ['PatientSex', 'x00100040'],
  ['StudyDate', 'x00080020'],
  ['StudyTime', 'x00080030'],
  ['StudyID', 'x00200010'],
  ['AccessionNumber', 'x00080050'],
  ['ReferringPhysicianName', 'x00080090'],
];

export function parseDicomHeader(bytes: Uint8Array, opts: ParseOptions): DicomHeader {
  return readHeader(bytes, opts).header;
}

/**
 * Where a file's stored values lie when they can be copied straight into a volume: one frame of native
 * little-endian grey samples of 8, 16 or 32 bits, not deflated. `offset` is a byte offset in the file.
 */
export interface DirectPixels {
  offset: number;
  bytes: number;
  /** The size of the file when its header was read; a file of another size is decoded the general way. */
  fileSize: number;
}

/** The header, and where its pixels lie when a plain copy of file bytes gives the stored values. */
export function parseDicomHeaderDirect(bytes: Uint8Array, opts: ParseOptions): { header: DicomHeader; direct?: DirectPixels } {
  const { header, ds, ts } = readHeader(bytes, opts);
  const pixel = ds.elements[PIXEL_DATA]!;
  const frameBytes = header.rows * header.columns * (header.bitsAllocated / 8);
  const plain = ts.codec === 'native' && !ts.deflated && ts.littleEndian && header.samplesPerPixel === 1 && header.numberOfFrames === 1 && header.bitsAllocated >= 8;
  if (!plain || pixel.length < frameBytes) return { header };
  return { header, direct: { offset: pixel.dataOffset, bytes: frameBytes, fileSize: opts.fileSize ?? bytes.length } };
}

/**
 * The header and the codestream of each frame of an encapsulated object, split as decodePixels splits
 * them (each copied into a buffer of its own from `alloc`, so `bytes` may be reused at once), for decoding elsewhere (a
 * decoding thread, see decode_pool.ts); undefined for native pixels.
 */
export function parseDicomFrames(bytes: Uint8Array, opts: ParseOptions, alloc: (n: number) => Uint8Array = (n) => new Uint8Array(n)): { header: DicomHeader; codec: Codec; frames: Uint8Array[] } | undefined {
  const { header, ds, ts } = readHeader(bytes, opts);
  if (ts.codec === 'native') return undefined;
  const frames = splitFrames(ds, ds.elements[PIXEL_DATA]!, header.numberOfFrames, ts.codec).map((f) => {
    const own = alloc(f.length);
    own.set(f);
    return own;
  });
  return { header, codec: ts.codec, frames };
}

export async function parseDicom(bytes: Uint8Array, opts: ParseOptions): Promise<DicomObject> {
  const { header, ds, ts } = readHeader(bytes, opts);
  const pixels = await decodePixels(ds, ds.elements[PIXEL_DATA]!, ts, header, opts.scratch);
  return { ...header, pixels };
}

// --- internal ---

function readHeader(bytes: Uint8Array, opts: ParseOptions): { header: DicomHeader; ds: DataSet; ts: TransferSyntax } {
  const fileSize = opts.fileSize ?? bytes.length;
  const { ds, ts, warnings } = readDicomFile(bytes, opts.limits, fileSize);
  const pixel = ds.elements[PIXEL_DATA];
  if (!pixel) throw new GatedError('no_pixel_data', 'the object holds no PixelData (7FE0,0010)');

  const rows = us(ds, 'x00280010') ?? 0;
  const columns = us(ds, 'x00280011') ?? 0;
  const samplesPerPixel = us(ds, 'x00280002') ?? 1;
  const bitsAllocated = us(ds, 'x00280100') ?? 0;
  const bitsStored = us(ds, 'x00280101') ?? bitsAllocated;
  const highBit = us(ds, 'x00280102') ?? bitsStored - 1;
  const pixelRepresentation = (us(ds, 'x00280103') ?? 0) === 1 ? 1 : 0;
  const planarConfiguration = (us(ds, 'x00280006') ?? 0) === 1 ? 1 : 0;
  const numberOfFrames = Math.max(1, Math.trunc(num(ds, 'x00280008') ?? 1));
  const photometric = (str(ds, 'x00280004') ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2')).trim().toUpperCase();

  if (rows < 1 || columns < 1) throw new GatedError('bad_geometry', `image is ${columns}x${rows}`);
  if (![1, 8, 16, 32].includes(bitsAllocated)) throw new GatedError('bad_geometry', `BitsAllocated is ${bitsAllocated}; 1, 8, 16 or 32 expected`);
  if (bitsStored < 1 || bitsStored > bitsAllocated) throw new GatedError('bad_geometry', `BitsStored ${bitsStored} does not fit BitsAllocated ${bitsAllocated}`);
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) throw new GatedError('bad_geometry', `SamplesPerPixel is ${samplesPerPixel}; 1 or 3 expected`);
  if (highBit !== bitsStored - 1) warnings.push({ code: 'high_bit', message: `HighBit ${highBit} is not BitsStored-1; pixels are read as if it were` });

  const bytesPerSample = bitsAllocated / 8;
  const expected = bitsAllocated === 1 ? Math.ceil((rows * columns * numberOfFrames * samplesPerPixel) / 8) : rows * columns * numberOfFrames * samplesPerPixel * bytesPerSample;
  const outBytes = rows * columns * numberOfFrames * samplesPerPixel * Math.max(1, bytesPerSample);
  if (!Number.isSafeInteger(outBytes) || outBytes > opts.limits.maxVoxelBytes) {
    throw new GatedError('too_large', `the pixels would need ${outBytes} bytes; the limit is ${opts.limits.maxVoxelBytes}`, { details: { rows, columns, numberOfFrames } });
  }
  const encapsulated = ts.codec !== 'native';
  if (!encapsulated) {
    if (pixel.hadUndefinedLength || pixel.encapsulatedPixelData) throw new GatedError('bad_length', 'native pixel data has an undefined length');
    const need = photometric === 'YBR_FULL_422' ? (expected / 3) * 2 : expected;
    if (pixel.length < need) {
      throw new GatedError(pixel.dataOffset + pixel.length >= fileSize ? 'truncated' : 'bad_geometry', `PixelData has ${pixel.length} bytes; the header implies ${need}`);
    }
  } else if (fileSize === bytes.length && (!pixel.fragments || pixel.fragments.length === 0)) {
    throw new GatedError('bad_length', 'encapsulated PixelData holds no fragments');
  }
  // 12-bit lossy JPEG decodes for grey images only (see codecs.ts); refused here before any pixel work
  if (ts.uid === '1.2.840.10008.1.2.4.51' && bitsAllocated > 8 && samplesPerPixel !== 1) {
    throw new GatedError('unsupported_transfer_syntax', '12-bit colour JPEG Extended (1.2.840.10008.1.2.4.51) is not supported; transcode to a lossless syntax');
  }
  if (photometric === 'MONOCHROME1') warnings.push({ code: 'monochrome1', message: 'MONOCHROME1: low values display white; stored values are kept as they are' });

  const frames = frameGeometry(ds, numberOfFrames);
  const patient: Record<string, string> = {};
  for (const [key, tag] of PATIENT_TAGS) {
    const v = str(ds, tag)?.trim();
    if (v) patient[key] = v;
  }
  const header: DicomHeader = {
    sourceIndex: opts.index,
    sourceName: opts.name,
    transferSyntaxUID: ts.uid,
    ...opt('sopClassUID', uid(ds, 'x00080016')),
    ...opt('sopInstanceUID', uid(ds, 'x00080018')),
    ...opt('studyInstanceUID', uid(ds, 'x0020000d')),
    ...opt('seriesInstanceUID', uid(ds, 'x0020000e')),
    ...opt('frameOfReferenceUID', uid(ds, 'x00200052')),
    ...opt('seriesNumber', num(ds, 'x00200011')),
    ...opt('seriesDescription', str(ds, 'x0008103e')?.trim()),
    ...opt('modality', str(ds, 'x00080060')?.trim()),
    ...opt('instanceNumber', num(ds, 'x00200013')),
    ...opt('acquisitionNumber', num(ds, 'x00200012')),
    ...opt('echoNumber', num(ds, 'x00180086')),
    ...opt('gantryTilt', num(ds, 'x00181120')),
    rows,
    columns,
    numberOfFrames,
    samplesPerPixel,
    photometric,
    bitsAllocated,
    bitsStored,
    highBit,
    pixelRepresentation,
    planarConfiguration,
    frames,
    ...(Object.keys(patient).length > 0 ? { patient } : {}),
    warnings,
  };
  return { header, ds, ts };
}

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function uid(ds: DataSet, tag: string): string | undefined {
  return str(ds, tag)?.replace(/\0/g, '').trim() || undefined;
}

/** Geometry of each frame: per-frame functional groups override shared ones, which override top-level tags. */
function frameGeometry(ds: DataSet, n: number): FrameGeometry[] {
  const shared = item(ds, 'x52009229');
  const perFrame = ds.elements.x52009230?.items;
  const top = readGeometry([ds]);
  const out: FrameGeometry[] = [];
  for (let f = 0; f < n; f++) {
    const pf = perFrame?.[f]?.dataSet;
    if (!shared && !pf) {
      out.push(top);
      continue;
    }
    const groups = [pf, shared].filter((g): g is DataSet => g !== undefined);
    const g = readGeometry(groups.flatMap((grp) => [item(grp, 'x00209113'), item(grp, 'x00209116'), item(grp, 'x00289110'), item(grp, 'x00289145'), item(grp, 'x00289132')]).filter((x): x is DataSet => x !== undefined));
    const content = pf ? item(pf, 'x00209111') : undefined;
    const frame: FrameGeometry = {
      ...top,
      ...Object.fromEntries(Object.entries(g).filter(([, v]) => v !== undefined)),
      rescale: g.rescale.slope !== 1 || g.rescale.intercept !== 0 ? g.rescale : top.rescale,
    };
    if (content) {
      const el = content.elements.x00209157;
      if (el && el.length >= 4) frame.dimensionIndex = Array.from({ length: el.length / 4 }, (_, i) => content.uint32('x00209157', i)!);
      const t = content.elements.x00209128 ? content.uint32('x00209128') : undefined;
      if (t !== undefined) frame.temporalPositionIndex = t;
    }
    out.push(frame);
  }
  return out;
}

/** Reads geometry tags from the first data set (of several) that has each one. */
function readGeometry(sets: DataSet[]): FrameGeometry {
  const first = <T>(f: (d: DataSet) => T | undefined): T | undefined => {
    for (const d of sets) {
      const v = f(d);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const position = first((d) => nums(d, 'x00200032'));
  const orientation = first((d) => nums(d, 'x00200037'));
  const spacing = first((d) => nums(d, 'x00280030')) ?? first((d) => nums(d, 'x00181164'));
  const slope = first((d) => num(d, 'x00281053'));
  const inter = first((d) => num(d, 'x00281052'));
  const center = first((d) => num(d, 'x00281050'));
  const width = first((d) => num(d, 'x00281051'));
  const thick = first((d) => num(d, 'x00180050'));
  const g: FrameGeometry = { rescale: { slope: slope ?? 1, intercept: inter ?? 0 } };
  if (position?.length === 3) g.position = position as Vec3;
  if (orientation?.length === 6) g.orientation = orientation as FrameGeometry['orientation'];
  if (spacing?.length === 2 && spacing[0]! > 0 && spacing[1]! > 0) g.pixelSpacing = spacing as [number, number];
  if (thick !== undefined) g.sliceThickness = thick;
  if (center !== undefined && width !== undefined) g.window = { center, width };
  return g;
}
