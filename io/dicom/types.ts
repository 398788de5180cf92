/**
 * What the DICOM file parser hands to series assembly: one parsed object (single- or multi-frame),
 * its decoded pixels and the per-frame geometry, with nothing yet combined across files.
 */
import type { Vec3 } from '../geometry.ts';
import type { Rescale, VoxelArray } from '../volume.ts';

export interface FrameGeometry {
  /** ImagePositionPatient (LPS, mm) of the frame's first transmitted pixel. */
  position?: Vec3;
  /** ImageOrientationPatient: row direction cosines then column direction cosines. */
  orientation?: [number, number, number, number, number, number];
  /** PixelSpacing: [between rows, between columns] in mm. */
  pixelSpacing?: [number, number];
  sliceThickness?: number;
  /** Modality LUT of this frame (identity when absent). */
  rescale: Rescale;
  window?: { center: number; width: number };
  /** Stack/temporal indices from the per-frame FrameContentSequence, when present. */
  dimensionIndex?: number[];
  temporalPositionIndex?: number;
}

export interface DicomObject {
  /** Index of the source item (file order), for error reports; never a path. */
  sourceIndex: number;
  sourceName: string;
  transferSyntaxUID: string;
  sopClassUID?: string;
  sopInstanceUID?: string;
  studyInstanceUID?: string;
  seriesInstanceUID?: string;
  frameOfReferenceUID?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  modality?: string;
  instanceNumber?: number;
  acquisitionNumber?: number;
  echoNumber?: number;
  /** (0018,1120) GantryDetectorTilt in degrees, when present. */
  gantryTilt?: number;
  rows: number;
  columns: number;
  numberOfFrames: number;
  samplesPerPixel: number;
  photometric: string;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  pixelRepresentation: 0 | 1;
  planarConfiguration: 0 | 1;
  /**
   * Decoded stored values, frame after frame, each frame row-major (row r, column c at r*columns + c);
   * colour samples interleaved per pixel (RGB after any YBR conversion). BitsStored already applied
   * (masked / sign-extended). The modality LUT is NOT applied here.
   */
  pixels: VoxelArray;
  /** One entry per frame. */
  frames: FrameGeometry[];
  /**
   * Patient/study attributes a derived object (DICOM SEG) must copy: PatientName, PatientID,
   * PatientBirthDate, PatientSex, StudyDate, StudyTime, StudyID, AccessionNumber, ReferringPhysicianName.
   * Patient data: never logged, never used in names.
   */
  patient?: Record<string, string>;
  /** Non-fatal problems found while parsing this object. */
  warnings: { code: string; message: string }[];
}
