/**
 * DICOM Segmentation (BINARY) from a label map on the source series' grid: one frame per (segment,
 * source slice) holding that segment, each placed by the source slice's ImagePositionPatient and
 * referencing its SOPInstanceUID, so viewers and PACS overlay it exactly on the images it came from.
 * Frames of a segment follow the source slice order; segments follow the order they are given in.
 */
import { GatedError } from '../../core/errors.ts';
import { applyAffine, axisVector, norm, rasToLps, type Mat4 } from '../geometry.ts';
import type { Volume } from '../volume.ts';
import { checkCode, codeItem, DCM_SEGMENTATION, DCM_SOURCE_IMAGE, srgbToDicomLab, TISSUE, type CodedConcept } from './codes.ts';
import { encodePart10, type Item } from './encode.ts';
import { mapToSourceGrid, readSlice } from './grid.ts';
import { isValidUid, newUid, uidFrom } from './uid.ts';

export type { CodedConcept } from './codes.ts';

export interface SegmentDef {
  /** The value this segment has in the label map (a positive integer). */
  label: number;
  name: string;
  category?: CodedConcept;
  type?: CodedConcept;
  algorithmName?: string;
  /** Recommended display colour, sRGB 0-255. */
  color?: [number, number, number];
}

export interface SegSource {
  studyInstanceUID: string;
  seriesInstanceUID: string;
  frameOfReferenceUID: string;
  sopClassUID: string;
  /** One per source slice k. */
  sopInstanceUIDs: string[];
  /** The source grid: shape [nx = columns, ny = rows, nz] and RAS affine, as the reader gives them. */
  shape: number[];
  affine: Mat4;
  /** Patient/study attributes copied from the source, by keyword (PatientName, PatientID, StudyDate, ...). */
  patient?: Record<string, string>;
}

export interface SegOptions {
  seriesNumber?: number;
  seriesDescription?: string;
  manufacturer?: string;
  softwareVersion?: string;
  contentCreator?: string;
  /** Derive this object's UIDs from a seed instead of at random (deterministic reruns). */
  uidSeed?: string;
  /** Content date/time (default: now). */
  contentDateTime?: Date;
}

export const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';

/** Patient and study attributes carried over from the source, with their tags and VRs. */
const COPIED: Record<string, [string, string]> = {
  PatientName: ['00100010', 'PN'],
  PatientID: ['00100020', 'LO'],
  PatientBirthDate: ['00100030', 'DA'],
  PatientSex: ['00100040', 'CS'],
  StudyDate: ['00080020', 'DA'],
  StudyTime: ['00080030', 'TM'],
  AccessionNumber: ['00080050', 'SH'],
  ReferringPhysicianName: ['00080090', 'PN'],
  StudyID: ['00200010', 'SH'],
};

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const IMPLEMENTATION_UID = '2.25.255296138116112095240004135067192070925';
const INTEGER_DTYPES = new Set(['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32']);

/**
 * Encodes `labels` as a DICOM SEG Part-10 file (explicit VR little endian) derived from `source`.
 * Every non-zero label value must have a segment; a label map with no voxel at all still gives a valid
 * object, holding one empty frame of the first segment on the first slice.
 */
export function writeDicomSeg(labels: Volume, source: SegSource, segments: SegmentDef[], opts: SegOptions = {}): Uint8Array {
  if (!INTEGER_DTYPES.has(labels.dtype)) throw new GatedError('config', `a label map must hold integers; got ${labels.dtype}`);
  checkSegments(segments);
  checkSource(source);
  const [nx, ny, nz] = source.shape as [number, number, number];
  const map = mapToSourceGrid(labels, source.shape, source.affine);
  const n2 = nx * ny;
  const slice = new Float64Array(n2);
  const segIndex = new Map(segments.map((s, i) => [s.label, i]));

  // Pass 1: which segments each slice holds; undefined labels are an error, not silently dropped.
  const present = segments.map(() => new Uint8Array(nz));
  for (let k = 0; k < nz; k++) {
    readSlice(labels, map, nx, ny, k, slice);
    for (let p = 0; p < n2; p++) {
      const v = slice[p]!;
      if (v === 0) continue;
      const s = segIndex.get(v);
      if (s === undefined) throw new GatedError('config', `label ${v} occurs in the map but has no segment definition`, { details: { label: v } });
      present[s]![k] = 1;
    }
  }
  const frames: { seg: number; k: number }[] = [];
  segments.forEach((_, s) => {
    for (let k = 0; k < nz; k++) if (present[s]![k]) frames.push({ seg: s, k });
  });
  if (frames.length === 0) frames.push({ seg: 0, k: 0 });

  // Pass 2: frames are packed back to back, bit after bit, with no padding between frames (PS3.5 8.1.1).
  const bits = new Uint8Array(Math.ceil((frames.length * n2) / 8));
  let lastK = -1;
  frames.forEach(({ seg, k }, f) => {
    if (k !== lastK) readSlice(labels, map, nx, ny, k, slice);
    lastK = k;
    const label = segments[seg]!.label;
    const first = f * n2;
    for (let p = 0; p < n2; p++) {
      if (slice[p] !== label) continue;
      const bit = first + p;
      bits[bit >> 3]! |= 1 << (bit & 7);
    }
  });

  const lps = rasToLps(source.affine);
  const colStep = axisVector(lps, 0); // between adjacent columns: DICOM's row direction
  const rowStep = axisVector(lps, 1);
  const colSpacing = norm(colStep);
  const rowSpacing = norm(rowStep);
  const iop = [...colStep.map((v) => v / colSpacing), ...rowStep.map((v) => v / rowSpacing)];
  const sliceStep = nz > 1 ? norm(axisVector(lps, 2)) : undefined;
  const uid = (purpose: string) => (opts.uidSeed === undefined ? newUid() : uidFrom(`${opts.uidSeed}\0${purpose}`));
  const sopUid = uid('sop');
  const dimOrgUid = uid('dimension-organization');
  const seriesUid = uid('series');
  const now = opts.contentDateTime ?? new Date();
  const iso = now.toISOString();
  const date = iso.slice(0, 10).replace(/-/g, '');
  const time = iso.slice(11, 19).replace(/:/g, '');
  const copied: Item = {};
  for (const [key, [tag, vr]] of Object.entries(COPIED)) copied[tag] = [vr, source.patient?.[key] ?? ''];

  const ds: Item = {
    ...copied,
    '00080005': ['CS', 'ISO_IR 192'],
    '00080008': ['CS', 'DERIVED\\PRIMARY'],
    '00080012': ['DA', date],
    '00080013': ['TM', time],
    '00080016': ['UI', SEG_SOP_CLASS],
    '00080018': ['UI', sopUid],
    '00080023': ['DA', date],
    '00080033': ['TM', time],
    '00080060': ['CS', 'SEG'],
    '00080070': ['LO', text(opts.manufacturer ?? 'gatedvision', 64)],
    '00080201': ['SH', '+0000'],
    '0008103E': ['LO', text(opts.seriesDescription ?? 'Segmentation', 64)],
    '00081090': ['LO', 'gatedvision'],
    '00081115': ['SQ', [{
      '0008114A': ['SQ', source.sopInstanceUIDs.map((u) => ({ '00081150': ['UI', source.sopClassUID], '00081155': ['UI', u] }))],
      '0020000E': ['UI', source.seriesInstanceUID],
    }]],
    '00181000': ['LO', '0'],
    '00181020': ['LO', text(opts.softwareVersion ?? '0.1.0', 64)],
    '0020000D': ['UI', source.studyInstanceUID],
    '0020000E': ['UI', seriesUid],
    '00200011': ['IS', String(seriesNumber(opts.seriesNumber))],
    '00200013': ['IS', '1'],
    '00200052': ['UI', source.frameOfReferenceUID],
    '00201040': ['LO', ''],
    '00209221': ['SQ', [{ '00209164': ['UI', dimOrgUid] }]],
    '00209222': ['SQ', [
      { '00209164': ['UI', dimOrgUid], '00209165': ['AT', [0x0062000b]], '00209167': ['AT', [0x0062000a]], '00209421': ['LO', 'Segment'] },
      { '00209164': ['UI', dimOrgUid], '00209165': ['AT', [0x00200032]], '00209167': ['AT', [0x00209113]], '00209421': ['LO', 'Position'] },
    ]],
    '00280002': ['US', 1],
    '00280004': ['CS', 'MONOCHROME2'],
    '00280008': ['IS', String(frames.length)],
    '00280010': ['US', ny],
    '00280011': ['US', nx],
    '00280100': ['US', 1],
    '00280101': ['US', 1],
    '00280102': ['US', 0],
    '00280103': ['US', 0],
    '00282110': ['CS', '00'],
    '00620001': ['CS', 'BINARY'],
    '00620002': ['SQ', segments.map((s, i) => ({
      '00620003': ['SQ', [codeItem(s.category ?? TISSUE)]],
      '00620004': ['US', i + 1],
      '00620005': ['LO', text(s.name, 64)],
      '00620008': ['CS', 'AUTOMATIC'],
      '00620009': ['LO', text(s.algorithmName ?? 'gatedvision', 64)],
      '0062000F': ['SQ', [codeItem(s.type ?? TISSUE)]],
      ...(s.color ? { '0062000D': ['US', srgbToDicomLab(s.color)] } : {}),
    }))],
    // A label map gives each voxel one value, so segments never overlap.
    '00620013': ['CS', 'NO'],
    '00700080': ['CS', 'SEGMENTATION'],
    '00700081': ['LO', ''],
    '00700084': ['PN', text(opts.contentCreator ?? '', 64)],
    '52009229': ['SQ', [{
      '00209116': ['SQ', [{ '00200037': ['DS', iop] }]],
      '00289110': ['SQ', [{
        '00280030': ['DS', [rowSpacing, colSpacing]],
        ...(sliceStep !== undefined ? { '00180050': ['DS', [sliceStep]], '00180088': ['DS', [sliceStep]] } : { '00180050': ['DS', [1]] }),
      }]],
    }]],
    '52009230': ['SQ', frames.map(({ seg, k }) => ({
      '00089124': ['SQ', [{
        '00082112': ['SQ', [{
          '00081150': ['UI', source.sopClassUID],
          '00081155': ['UI', source.sopInstanceUIDs[k]!],
          '0040A170': ['SQ', [codeItem(DCM_SOURCE_IMAGE)]],
        }]],
        '00089215': ['SQ', [codeItem(DCM_SEGMENTATION)]],
      }]],
      '00209111': ['SQ', [{ '00209157': ['UL', [seg + 1, k + 1]] }]],
      '00209113': ['SQ', [{ '00200032': ['DS', applyAffine(lps, [0, 0, k])] }]],
      '0062000A': ['SQ', [{ '0062000B': ['US', seg + 1] }]],
    }))],
    '7FE00010': ['OB', bits],
  };
  const meta: Item = {
    '00020001': ['OB', new Uint8Array([0, 1])],
    '00020002': ['UI', SEG_SOP_CLASS],
    '00020003': ['UI', sopUid],
    '00020010': ['UI', EXPLICIT_VR_LE],
    '00020012': ['UI', IMPLEMENTATION_UID],
    '00020013': ['SH', 'GATEDVISION_010'],
  };
  return encodePart10(meta, ds);
}

// --- internal ---

function checkSegments(segments: SegmentDef[]): void {
  if (segments.length === 0) throw new GatedError('config', 'at least one segment is needed');
  if (segments.length > 0xffff) throw new GatedError('config', `at most 65535 segments fit a SEG; got ${segments.length}`);
  const seen = new Set<number>();
  for (const s of segments) {
    if (!Number.isInteger(s.label) || s.label <= 0 || s.label > 0xffffffff) {
      throw new GatedError('config', `segment labels are positive integers; got ${s.label}`, { details: { label: s.label } });
    }
    if (seen.has(s.label)) throw new GatedError('config', `label ${s.label} is defined by two segments`, { details: { label: s.label } });
    seen.add(s.label);
    if (typeof s.name !== 'string' || text(s.name, 64) === '') throw new GatedError('config', `segment ${s.label} needs a name`);
    if (s.category) checkCode(s.category, `the category of segment ${s.label}`);
    if (s.type) checkCode(s.type, `the type of segment ${s.label}`);
  }
}

function checkSource(source: SegSource): void {
  const uids = [source.studyInstanceUID, source.seriesInstanceUID, source.frameOfReferenceUID, source.sopClassUID, ...source.sopInstanceUIDs];
  const bad = uids.find((u) => typeof u !== 'string' || !isValidUid(u));
  if (bad !== undefined) throw new GatedError('config', 'the source carries an invalid UID', { details: { uid: String(bad).slice(0, 80) } });
  const shape = source.shape;
  if (shape.length !== 3 || !shape.every((n) => Number.isInteger(n) && n >= 1 && n <= 0xffff)) {
    throw new GatedError('bad_geometry', `the source grid must be [columns, rows, slices] with 1-65535 each; got ${shape.join('x')}`);
  }
  if (source.sopInstanceUIDs.length !== shape[2]) {
    // A single multi-frame source would need per-frame references (ReferencedFrameNumber); not written here.
    throw new GatedError('bad_geometry', `the source lists ${source.sopInstanceUIDs.length} instances for ${shape[2]} slices`);
  }
}

function seriesNumber(n: number | undefined): number {
  const v = n ?? 300;
  if (!Number.isInteger(v) || v < 0 || v > 2147483647) throw new GatedError('config', `series number must be a non-negative integer; got ${n}`);
  return v;
}

/** Free text for LO/PN values: no backslash (the value separator) or control characters; cut to `max`. */
function text(s: string, max: number): string {
  return Array.from(s.replace(/[\\\x00-\x1f\x7f]/g, ' ').trim()).slice(0, max).join('');
}
