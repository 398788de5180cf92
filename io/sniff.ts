/** Format detection by magic bytes only; file names are never trusted (a TIFF named .png is a TIFF). */

export type SniffedFormat = 'dicom' | 'nifti' | 'gzip' | 'zip' | 'png' | 'jpeg' | 'tiff' | 'webp' | 'unknown';

/** Needs at least the first 352 bytes for NIfTI and 132 for DICOM; fewer bytes just narrow the answer. */
export function sniffFormat(head: Uint8Array): SniffedFormat {
  const b = head;
  const at = (i: number) => b[i] ?? -1;
  if (b.length >= 132 && at(128) === 0x44 && at(129) === 0x49 && at(130) === 0x43 && at(131) === 0x4d) return 'dicom';
  if (at(0) === 0x1f && at(1) === 0x8b) return 'gzip';
  if (at(0) === 0x50 && at(1) === 0x4b && (at(2) === 3 || at(2) === 5) && (at(3) === 4 || at(3) === 6)) return 'zip';
  if (at(0) === 0x89 && at(1) === 0x50 && at(2) === 0x4e && at(3) === 0x47) return 'png';
  if (at(0) === 0xff && at(1) === 0xd8 && at(2) === 0xff) return 'jpeg';
  if ((at(0) === 0x49 && at(1) === 0x49 && at(2) === 0x2a && at(3) === 0) || (at(0) === 0x4d && at(1) === 0x4d && at(2) === 0 && at(3) === 0x2a)) return 'tiff';
  if (at(0) === 0x52 && at(1) === 0x49 && at(2) === 0x46 && at(3) === 0x46 && at(8) === 0x57 && at(9) === 0x45 && at(10) === 0x42 && at(11) === 0x50) return 'webp';
  if (isNiftiHeader(b)) return 'nifti';
  return 'unknown';
}

/** sizeof_hdr 348 (NIfTI-1) or 540 (NIfTI-2) in either byte order, plus the magic string. */
export function isNiftiHeader(b: Uint8Array): boolean {
  if (b.length < 4) return false;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = dv.getInt32(0, true);
  const be = dv.getInt32(0, false);
  if (le === 348 || be === 348) {
    if (b.length < 348) return b.length >= 4;
    const m = String.fromCharCode(b[344]!, b[345]!, b[346]!);
    return m === 'n+1' || m === 'ni1';
  }
  if (le === 540 || be === 540) {
    if (b.length < 12) return true;
    const m = String.fromCharCode(b[4]!, b[5]!, b[6]!);
    return m === 'n+2' || m === 'ni2';
  }
  return false;
}
