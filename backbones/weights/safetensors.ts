/**
 * safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
 * (+ optional __metadata__ of strings), then the raw little-endian data. Reading converts every float and
 * integer dtype to float32; writing emits F32.
 */
import { GatedError } from '../../core/errors.ts';
import { decodeElements, numel, type StateDict } from './tensors.ts';

const DTYPES: Record<string, string> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.byteLength < 8) throw new GatedError('truncated', 'safetensors file is shorter than its header length field');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = Number(view.getBigUint64(0, true));
  if (hlen > bytes.byteLength - 8 || hlen > 100_000_000) throw new GatedError('unsupported_format', 'safetensors header length is out of range');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen))) as Record<string, unknown>;
  } catch (e) {
    throw new GatedError('unsupported_format', 'safetensors header is not JSON', { cause: e });
  }
  const base = 8 + hlen;
  const tensors: StateDict = new Map();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = DTYPES[e.dtype ?? ''];
    if (!dtype || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) throw new GatedError('unsupported_format', `safetensors entry '${name}' is malformed or has an unsupported dtype (${e.dtype})`);
    const [start, end] = e.data_offsets;
    const count = numel(e.shape);
    if (end - start !== count * (decodeSize(dtype))) throw new GatedError('unsupported_format', `safetensors entry '${name}': offsets do not match its shape`);
    tensors.set(name, { shape: e.shape, data: decodeElements(bytes, dtype, base + start, count) });
  }
  return { tensors, metadata };
}

export function writeSafetensors(tensors: StateDict, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  let off = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.length * 4] };
    off += t.data.length * 4;
  }
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const hbytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hbytes.length + off);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let p = 8 + hbytes.length;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    for (let i = 0; i < d.length; i++) view.setFloat32(p + i * 4, d[i]!, true);
    p += d.length * 4;
  }
  return out;
}

// --- internal ---

function decodeSize(dtype: string): number {
  return { float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1 }[dtype] ?? 0;
}
