/**
 * DICOM Segmentation (BINARY) from a label map on the source series' grid: one frame per (segment,
 * source slice) holding that segment, each placed by the source slice's ImagePositionPatient and
 * referencing its SOPInstanceUID, so viewers and PACS overlay it exactly on the images it came from.
 */
import { randomUUID } from 'node:crypto';
import { GatedError } from '../../core/errors.ts';
import { applyAffine, axisVector, invert4, matmul4, norm, rasToLps, type Mat4 } from '../geometry.ts';
import type { Volume } from '../volume.ts';
import { encodePart10, type Item } from './encode.ts';

export interface CodedConcept {
  value: string;
  scheme: string;
  meaning: string;
}

export interface SegmentDef {
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
  /** The source grid: shape [nx = columns, ny = rows, nz] and RAS affine. */
  shape: number[];
  affine: Mat4;
  /** Patient/study attributes copied from the source (PatientName, PatientID, StudyDate, ...). */
  patient?: Record<string, string>;
}

export interface SegOptions {
  seriesNumber?: number;
  seriesDescription?: string;
  manufacturer?: string;
  softwareVersion?: string;
  contentCreator?: string;
}

const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const TISSUE: CodedConcept = { value: '85756007', scheme: 'SCT', meaning: 'Tissue' };

export function newUid(): string {
  // 2.25 + the UUID as a decimal integer (PS3.5 B.2)
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

export function writeDicomSeg(labels: Volume, source: SegSource, segments: SegmentDef[], opts: SegOptions = {}): Uint8Array {
  if (!['uint8', 'uint16', 'int16', 'int32', 'uint32', 'int8'].includes(labels.dtype)) throw new GatedError('config', `a label map must hold integers; got ${labels.dtype}`);
  if (segments.length === 0) throw new GatedError('config', 'at least one segment is needed');
  const grid = toSourceGrid(labels, source);
  const [nx, ny, nz] = source.shape as [number, number, number];
  if (source.sopInstanceUIDs.length !== nz) throw new GatedError('bad_geometry', `the source lists ${source.sopInstanceUIDs.length} instances for ${nz} slices`);
  const lps = rasToLps(source.affine);
  const colDir = axisVector(lps, 0); // along increasing column index (DICOM row direction)
  const rowDir = axisVector(lps, 1);
  const colSpacing = norm(colDir);
  const rowSpacing = norm(rowDir);
  const iop = [...colDir.map((v) => v / colSpacing), ...rowDir.map((v) => v / rowSpacing)];
  const sliceThickness = nz > 1 ? norm(axisVector(lps, 2)) : 1;
  const n2 = nx * ny;
  const known = new Set(segments.map((s) => s.label));
  for (let i = 0; i < grid.length; i++) {
    const v = grid[i]!;
    if (v !== 0 && !known.has(v)) throw new GatedError('config', `label ${v} occurs in the map but has no segment definition`);
  }
  // frames: for each segment, each slice that contains it
  const frames: { seg: number; k: number }[] = [];
  segments.forEach((s, si) => {
    for (let k = 0; k < nz; k++) {
      for (let p = 0; p < n2; p++) {
        if (grid[k * n2 + p] === s.label) {
          frames.push({ seg: si, k });
          break;
        }
      }
    }
  });
  // An empty mask still yields a valid object: one empty frame of the first segment on slice 0.
  if (frames.length === 0) frames.push({ seg: 0, k: 0 });
  const bits = new Uint8Array(Math.ceil((frames.length * n2) / 8));
  frames.forEach(({ seg, k }, f) => {
    const label = segments[seg]!.label;
    for (let p = 0; p < n2; p++) {
      if (grid[k * n2 + p] === label) {
        const bit = f * n2 + p; // frames are packed back to back, bit after bit
        bits[bit >> 3]! |= 1 << (bit & 7);
      }
    }
  });
  const sopUid = newUid();
  const seriesUid = newUid();
  const dimOrgUid = newUid();
  const now = new Date();
  const date = now.toISOString().slice(0, 10).replace(/-/g, '');
  const time = now.toISOString().slice(11, 19).replace(/:/g, '');
  const p = source.patient ?? {};
  const code = (c: CodedConcept): Item => ({ '00080100': ['SH', c.value], '00080102': ['SH', c.scheme], '00080104': ['LO', c.meaning] });
  const ipp = (k: number) => applyAffine(lps, [0, 0, k]);

  const ds: Item = {
    '00080005': ['CS', 'ISO_IR 192'],
    '00080008': ['CS', 'DERIVED\\PRIMARY'],
    '00080016': ['UI', SEG_SOP_CLASS],
    '00080018': ['UI', sopUid],
    '00080020': ['DA', p.StudyDate ?? ''],
    '00080023': ['DA', date],
    '00080030': ['TM', p.StudyTime ?? ''],
    '00080033': ['TM', time],
    '00080050': ['SH', p.AccessionNumber ?? ''],
    '00080060': ['CS', 'SEG'],
    '00080070': ['LO', opts.manufacturer ?? 'gatedvision'],
    '00080090': ['PN', p.ReferringPhysicianName ?? ''],
    '0008103E': ['LO', opts.seriesDescription ?? 'Segmentation'],
    '00081090': ['LO', 'gatedvision'],
    '00081115': ['SQ', [{ '0020000E': ['UI', source.seriesInstanceUID], '0008114A': ['SQ', source.sopInstanceUIDs.map((u) => ({ '00081150': ['UI', source.sopClassUID], '00081155': ['UI', u] }))] }]],
    '00100010': ['PN', p.PatientName ?? ''],
    '00100020': ['LO', p.PatientID ?? ''],
    '00100030': ['DA', p.PatientBirthDate ?? ''],
    '00100040': ['CS', p.PatientSex ?? ''],
    '00181000': ['LO', '0'],
    '00181020': ['LO', opts.softwareVersion ?? '0.1.0'],
    '0020000D': ['UI', source.studyInstanceUID],
    '0020000E': ['UI', seriesUid],
    '00200010': ['SH', p.StudyID ?? ''],
    '00200011': ['IS', String(opts.seriesNumber ?? 300)],
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
      '00620003': ['SQ', [code(s.category ?? TISSUE)]],
      '00620004': ['US', i + 1],
      '00620005': ['LO', s.name.slice(0, 64)],
      '00620008': ['CS', 'AUTOMATIC'],
      '00620009': ['LO', (s.algorithmName ?? 'gatedvision').slice(0, 64)],
      '0062000F': ['SQ', [code(s.type ?? TISSUE)]],
      ...(s.color ? { '0062000D': ['US', srgbToCieLab16(s.color)] as [string, number[]] } : {}),
    }))],
    '00700080': ['CS', 'SEGMENTATION'],
    '00700081': ['LO', ''],
    '00700084': ['PN', opts.contentCreator ?? ''],
    '52009229': ['SQ', [{
      '00289110': ['SQ', [{ '00280030': ['DS', [rowSpacing, colSpacing]], '00180050': ['DS', [sliceThickness]] }]],
      '00209116': ['SQ', [{ '00200037': ['DS', iop] }]],
    }]],
    '52009230': ['SQ', frames.map(({ seg, k }) => ({
      '00089124': ['SQ', [{
        '00082112': ['SQ', [{
          '00081150': ['UI', source.sopClassUID],
          '00081155': ['UI', source.sopInstanceUIDs[k]!],
          '0040A170': ['SQ', [code({ value: '121322', scheme: 'DCM', meaning: 'Source image for image processing operation' })]],
        }]],
        '00089215': ['SQ', [code({ value: '113076', scheme: 'DCM', meaning: 'Segmentation' })]],
      }]],
      '00209111': ['SQ', [{ '00209157': ['UL', [seg + 1, k + 1]] }]],
      '00209113': ['SQ', [{ '00200032': ['DS', ipp(k)] }]],
      '0062000A': ['SQ', [{ '0062000B': ['US', seg + 1] }]],
    }))],
    '7FE00010': ['OB', bits],
  };
  const meta: Item = {
    '00020001': ['OB', new Uint8Array([0, 1])],
    '00020002': ['UI', SEG_SOP_CLASS],
    '00020003': ['UI', sopUid],
    '00020010': ['UI', '1.2.840.10008.1.2.1'],
    '00020012': ['UI', '2.25.255296138116112095240004135067192070925'],
    '00020013': ['SH', 'GATEDVISION_010'],
  };
  return encodePart10(meta, ds);
}

// --- internal ---

/**
 * The label map on the source grid. It may be the source grid itself or any axis permutation/flip of it
 * (e.g. after reorientation to RAS); anything else is a geometry error, never silently resampled.
 */
function toSourceGrid(labels: Volume, source: SegSource): ArrayLike<number> {
  const [sx, sy, sz] = source.shape as [number, number, number];
  const [lx = 1, ly = 1, lz = 1] = labels.shape;
  if (labels.shape.length > 3 && (labels.shape[3] ?? 1) !== 1) throw new GatedError('bad_geometry', 'a label map has one component');
  // T maps source voxel indices to label voxel indices; it must be a signed permutation with integer offsets.
  const T = matmul4(invert4(labels.affine), source.affine);
  const perm: number[] = [];
  const sign: number[] = [];
  for (let c = 0; c < 3; c++) {
    let found = -1;
    for (let r = 0; r < 3; r++) {
      const v = T[r]![c]!;
      if (Math.abs(Math.abs(v) - 1) < 1e-4) {
        if (found >= 0) found = -2;
        else found = r;
      } else if (Math.abs(v) > 1e-4) found = -2;
    }
    if (found < 0) throw new GatedError('bad_geometry', 'the label map is not on the source grid (nor a flip/permutation of it)');
    perm.push(found);
    sign.push(Math.sign(T[found]![c]!));
  }
  const off = [0, 1, 2].map((r) => T[r]![3]!);
  if (off.some((o) => Math.abs(o - Math.round(o)) > 1e-3)) throw new GatedError('bad_geometry', 'the label map is shifted by a fraction of a voxel from the source grid');
  const ldims = [lx, ly, lz];
  const sdims = [sx, sy, sz];
  for (let c = 0; c < 3; c++) if (ldims[perm[c]!] !== sdims[c]) throw new GatedError('bad_geometry', `label map shape ${labels.shape.join('x')} does not match the source ${source.shape.join('x')}`);
  const identity = perm.every((p, i) => p === i) && sign.every((s) => s === 1) && off.every((o) => Math.abs(o) < 1e-3);
  if (identity) return labels.data;
  const out = new Uint16Array(sx * sy * sz);
  const idx = [0, 0, 0];
  for (let k = 0; k < sz; k++) for (let j = 0; j < sy; j++) for (let i = 0; i < sx; i++) {
    const s = [i, j, k];
    for (let c = 0; c < 3; c++) idx[perm[c]!] = Math.round(off[perm[c]!]!) + sign[c]! * s[c]!;
    out[i + sx * (j + sy * k)] = labels.data[idx[0]! + lx * (idx[1]! + ly * idx[2]!)] as number;
  }
  return out;
}

/** sRGB (0-255) → DICOM's scaled CIELab (0-65535), D65. */
function srgbToCieLab16([r, g, b]: [number, number, number]): number[] {
  const lin = (c: number) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const [R, G, B] = [lin(r), lin(g), lin(b)];
  const X = (0.4124 * R + 0.3576 * G + 0.1805 * B) / 0.95047;
  const Y = 0.2126 * R + 0.7152 * G + 0.0722 * B;
  const Z = (0.0193 * R + 0.1192 * G + 0.9505 * B) / 1.08883;
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  const L = 116 * f(Y) - 16;
  const a = 500 * (f(X) - f(Y));
  const bb = 200 * (f(Y) - f(Z));
  return [Math.round((L / 100) * 65535), Math.round(((a + 128) / 255) * 65535), Math.round(((bb + 128) / 255) * 65535)];
}
