/** The transfer syntaxes we read, and how: byte order, deflate, and which codec decodes encapsulated frames. */

export type Codec = 'native' | 'rle' | 'jpeg' | 'jpeg-lossless' | 'jpeg-ls' | 'j2k' | 'htj2k';

export interface TransferSyntax {
  uid: string;
  name: string;
  littleEndian: boolean;
  deflated: boolean;
  codec: Codec;
}

const table: [string, string, Codec, Partial<TransferSyntax>?][] = [
  ['1.2.840.10008.1.2', 'Implicit VR Little Endian', 'native'],
  ['1.2.840.10008.1.2.1', 'Explicit VR Little Endian', 'native'],
  ['1.2.840.10008.1.2.1.99', 'Deflated Explicit VR Little Endian', 'native', { deflated: true }],
  ['1.2.840.10008.1.2.2', 'Explicit VR Big Endian', 'native', { littleEndian: false }],
  ['1.2.840.10008.1.2.5', 'RLE Lossless', 'rle'],
  ['1.2.840.10008.1.2.4.50', 'JPEG Baseline (Process 1)', 'jpeg'],
  ['1.2.840.10008.1.2.4.51', 'JPEG Extended (Process 2 & 4)', 'jpeg'],
  ['1.2.840.10008.1.2.4.57', 'JPEG Lossless (Process 14)', 'jpeg-lossless'],
  ['1.2.840.10008.1.2.4.70', 'JPEG Lossless SV1 (Process 14, selection value 1)', 'jpeg-lossless'],
  ['1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless', 'jpeg-ls'],
  ['1.2.840.10008.1.2.4.81', 'JPEG-LS Near-Lossless', 'jpeg-ls'],
  ['1.2.840.10008.1.2.4.90', 'JPEG 2000 Lossless', 'j2k'],
  ['1.2.840.10008.1.2.4.91', 'JPEG 2000', 'j2k'],
  ['1.2.840.10008.1.2.4.201', 'HTJ2K Lossless', 'htj2k'],
  ['1.2.840.10008.1.2.4.202', 'HTJ2K Lossless RPCL', 'htj2k'],
  ['1.2.840.10008.1.2.4.203', 'HTJ2K', 'htj2k'],
];

export const TRANSFER_SYNTAXES: ReadonlyMap<string, TransferSyntax> = new Map(
  table.map(([uid, name, codec, extra]) => [uid, { uid, name, codec, littleEndian: true, deflated: false, ...extra }]),
);

/** Names of syntaxes we know but cannot decode, for a helpful rejection message. */
export const KNOWN_UNSUPPORTED: Readonly<Record<string, string>> = {
  '1.2.840.113619.5.2': 'GE private implicit VR big endian',
  '1.2.840.10008.1.2.4.100': 'MPEG2',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD',
  '1.2.840.10008.1.2.4.107': 'HEVC/H.265',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 multi-component lossless',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 multi-component',
  '1.2.840.10008.1.2.4.94': 'JPIP referenced',
};
