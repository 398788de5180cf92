/** Weight tensors as read from checkpoint files: float32 data in row-major order, with a shape. */
import { GatedError } from '../../core/errors.ts';

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

/** Parameter name → tensor, in the naming of whoever wrote the file. */
export type StateDict = Map<string, WeightTensor>;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Decodes `count` little-endian elements of a dtype starting at byte `offset` into float32. */
export function decodeElements(bytes: Uint8Array, dtype: string, offset: number, count: number): Float32Array {
  const size = DTYPE_BYTES[dtype];
  if (size === undefined) throw new GatedError('unsupported_format', `tensor dtype ${dtype} is not supported`);
  if (offset + count * size > bytes.byteLength) throw new GatedError('truncated', `tensor data runs past the end of its record (${dtype} x ${count})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * size);
  const out = new Float32Array(count);
  switch (dtype) {
    case 'float32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'float64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'float16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
      break;
    case 'bfloat16': {
      const f = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < count; i++) {
        f.setUint32(0, view.getUint16(i * 2, true) << 16, true);
        out[i] = f.getFloat32(0, true);
      }
      break;
    }
    case 'int64':
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      break;
    case 'int32':
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      break;
    case 'int16':
      for (let i = 0; i < count; i++) out[i] = view.getInt16(i * 2, true);
      break;
    case 'int8':
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i);
      break;
    case 'uint8':
    case 'bool':
      for (let i = 0; i < count; i++) out[i] = view.getUint8(i);
      break;
  }
  return out;
}

export const DTYPE_BYTES: Record<string, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** Reorders a tensor's axes (e.g. PyTorch [out, in, kh, kw] → TF.js [kh, kw, in, out]). */
export function permute(t: WeightTensor, perm: readonly number[]): WeightTensor {
  const shape = perm.map((p) => t.shape[p]!);
  const inStrides = strides(t.shape);
  const outStrides = strides(shape);
  const out = new Float32Array(t.data.length);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let rem = o;
    let src = 0;
    for (let d = 0; d < rank; d++) {
      idx[d] = Math.floor(rem / outStrides[d]!);
      rem -= idx[d]! * outStrides[d]!;
      src += idx[d]! * inStrides[perm[d]!]!;
    }
    out[o] = t.data[src]!;
  }
  return { shape, data: out };
}

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

// --- internal ---

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}
