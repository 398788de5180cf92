/** How much of a file is read to find its DICOM header (and to sniff its format), and what that gives. */
import type { InputItem } from '../types.ts';
import type { DicomHeader, DirectPixels } from './parse.ts';

export const HEAD_BYTES = 64 * 1024;

export interface HeaderRead {
  header: DicomHeader;
  direct?: DirectPixels;
}

export type HeaderReads = Map<InputItem, HeaderRead>;
