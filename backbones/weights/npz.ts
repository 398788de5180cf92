/**
 * NumPy .npz (a zip of .npy arrays), as JAX/Flax checkpoints are stored (MAXIM: '/'-joined Flax paths,
 * optionally under an `opt/target/` prefix, which is stripped). Little-endian float/int arrays, C order.
 */
import { GatedError } from '../../core/errors.ts';
import { decodeElements, numel, type StateDict } from './tensors.ts';
import { ZipReader } from './zip.ts';

const DESCR: Record<string, string> = {
  '<f4': 'float32', '<f8': 'float64', '<f2': 'float16', '<i8': 'int64', '<i4': 'int32', '<i2': 'int16', '|i1': 'int8', '|u1': 'uint8', '|b1': 'bool',
};

export function loadNpz(bytes: Uint8Array, { stripPrefix = 'opt/target/' }: { stripPrefix?: string } = {}): StateDict {
  const zip = new ZipReader(bytes, 'npz file');
  const out: StateDict = new Map();
  for (const name of zip.names()) {
    if (!name.endsWith('.npy')) continue;
    let key = name.slice(0, -4);
    if (stripPrefix && key.startsWith(stripPrefix)) key = key.slice(stripPrefix.length);
    out.set(key, parseNpy(zip.read(name), name));
  }
  if (out.size === 0) throw new GatedError('unsupported_format', 'npz file holds no arrays');
  return out;
}

export function parseNpy(b: Uint8Array, name = 'array'): { shape: number[]; data: Float32Array } {
  if (b[0] !== 0x93 || String.fromCharCode(...b.subarray(1, 6)) !== 'NUMPY') throw new GatedError('unsupported_format', `${name} is not a .npy array`);
  const major = b[6]!;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(b.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  const dtype = descr ? DESCR[descr] : undefined;
  if (!dtype || shapeText === undefined) throw new GatedError('unsupported_format', `${name}: unsupported .npy header ${header.trim()}`);
  if (fortran) throw new GatedError('unsupported_format', `${name}: Fortran-ordered arrays are not supported`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  return { shape, data: decodeElements(b, dtype, hstart + hlen, numel(shape)) };
}
