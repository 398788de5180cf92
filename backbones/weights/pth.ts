/**
 * PyTorch checkpoints (`torch.save`, zip format: <root>/data.pkl + <root>/data/<storage key>) read with the
 * restricted unpickler. Returns the state dict; a checkpoint that wraps it ({'model': sd},
 * {'state_dict': sd}, {'model_ema': sd}) is unwrapped. The legacy pre-1.6 tar/pickle format is refused.
 */
import { GatedError } from '../../core/errors.ts';
import { restrictedUnpickle, type StorageRef, type TensorRef } from './pickle.ts';
import { decodeElements, DTYPE_BYTES, numel, type StateDict, type WeightTensor } from './tensors.ts';
import { ZipReader } from './zip.ts';

const WRAPPER_KEYS = ['model', 'state_dict', 'model_ema', 'module'];

export function loadPth(bytes: Uint8Array): StateDict {
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b)) {
    throw new GatedError('unsupported_format', 'not a zip-format PyTorch checkpoint (legacy torch<1.6 files are not supported; re-save with torch.save)');
  }
  const zip = new ZipReader(bytes, 'PyTorch checkpoint');
  const pkl = zip.names().find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (!pkl) throw new GatedError('unsupported_format', 'PyTorch checkpoint has no data.pkl');
  const root = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const obj = restrictedUnpickle(zip.read(pkl));
  const storages = new Map<string, Uint8Array>();
  const storage = (s: StorageRef): Uint8Array => {
    let b = storages.get(s.key);
    if (!b) {
      b = zip.read(`${root}data/${s.key}`);
      storages.set(s.key, b);
    }
    return b;
  };
  const sd: StateDict = new Map();
  const dict = unwrap(obj);
  for (const [k, v] of dict) {
    if (!isTensor(v)) continue; // non-tensor entries (counters, metadata) carry no weights
    sd.set(String(k), materialize(v, storage(v.storage)));
  }
  if (sd.size === 0) throw new GatedError('unsupported_format', 'PyTorch checkpoint holds no tensors');
  return sd;
}

// --- internal ---

function isTensor(v: unknown): v is TensorRef {
  return typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor';
}

function unwrap(obj: unknown): Map<unknown, unknown> {
  if (!(obj instanceof Map)) throw new GatedError('unsupported_format', 'PyTorch checkpoint is not a dict');
  if ([...obj.values()].some(isTensor)) return obj;
  for (const k of WRAPPER_KEYS) {
    const inner = obj.get(k);
    if (inner instanceof Map) return unwrap(inner);
  }
  throw new GatedError('unsupported_format', `PyTorch checkpoint holds no state dict (keys: ${[...obj.keys()].slice(0, 8).join(', ')})`);
}

function materialize(t: TensorRef, bytes: Uint8Array): WeightTensor {
  const n = numel(t.shape);
  const size = DTYPE_BYTES[t.storage.dtype]!;
  const contiguous = t.shape.every((_, d) => t.shape[d] === 1 || t.stride[d] === t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
  if (contiguous) return { shape: t.shape, data: decodeElements(bytes, t.storage.dtype, t.offset * size, n) };
  // strided view (e.g. a saved transpose): gather element by element from the whole storage
  const all = decodeElements(bytes, t.storage.dtype, 0, bytes.byteLength / size);
  const out = new Float32Array(n);
  const idx = new Array<number>(t.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let src = t.offset;
    for (let d = 0; d < idx.length; d++) src += idx[d]! * t.stride[d]!;
    out[i] = all[src]!;
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d]! < t.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return { shape: t.shape, data: out };
}
