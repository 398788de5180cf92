/**
 * A restricted unpickler for PyTorch checkpoints. It rebuilds only what a state dict holds: dicts
 * (OrderedDict), lists, tuples, strings, numbers, booleans, None, and tensors through
 * torch._utils._rebuild_tensor_v2 / _rebuild_parameter over typed storages. Every other global is refused
 * before anything is called, so a hostile pickle cannot run code; unknown opcodes are refused too.
 */
import { GatedError } from '../../core/errors.ts';

/** A tensor as the pickle describes it; the bytes live in the archive's data/<key> record. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

export interface StorageRef {
  kind: 'storage';
  dtype: StorageDtype;
  key: string;
  numel: number;
}

export type StorageDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Storage classes a state dict may name, and their element types. */
const STORAGES: Record<string, StorageDtype> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** The only callables the unpickler will apply. */
const ALLOWED_CALLABLES = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter']);

interface PyGlobal {
  kind: 'global';
  name: string;
}

const MARK = Symbol('mark');

/** Parses a pickle; persistent ids ('storage', type, key, location, numel) become StorageRefs. */
export function restrictedUnpickle(data: Uint8Array): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const dec = new TextDecoder();
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > data.length) throw new GatedError('truncated', 'pickle ends early');
  };
  const u8 = () => (need(1), data[p++]!);
  const u16 = () => (need(2), (p += 2), view.getUint16(p - 2, true));
  const u32 = () => (need(4), (p += 4), view.getUint32(p - 4, true));
  const str = (n: number) => (need(n), (p += n), dec.decode(data.subarray(p - n, p)));
  const line = () => {
    const end = data.indexOf(0x0a, p);
    if (end < 0) throw new GatedError('truncated', 'pickle ends inside a GLOBAL');
    const s = dec.decode(data.subarray(p, end));
    p = end + 1;
    return s;
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new GatedError('unsupported_format', 'pickle: MARK missing');
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const pop = () => {
    if (stack.length === 0) throw new GatedError('unsupported_format', 'pickle: stack underflow');
    return stack.pop();
  };
  const top = () => stack[stack.length - 1];
  const global = (module: string, name: string): PyGlobal => {
    const full = `${module}.${name}`;
    if (module === 'torch' && name in STORAGES) return { kind: 'global', name: full };
    if (!ALLOWED_CALLABLES.has(full)) {
      throw new GatedError('unsupported_format', `checkpoint pickle references '${full}', which a weights file has no reason to contain; refusing to load it`);
    }
    return { kind: 'global', name: full };
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof Map)) throw new GatedError('unsupported_format', 'pickle: SETITEM on a non-dict');
    for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
  };
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: need(8); p += 8; break; // FRAME
      case 0x2e: return pop(); // STOP
      case 0x28: stack.push(MARK); break;
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break;
      case 0x86: { const b = pop(); stack.push([pop(), b]); break; }
      case 0x87: { const c = pop(); const b = pop(); stack.push([pop(), b, c]); break; }
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(memoGet(memo, u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(memo, u32())); break; // LONG_BINGET
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x43: { const n = u8(); need(n); stack.push(data.slice(p, p + n)); p += n; break; } // SHORT_BINBYTES
      case 0x42: { const n = u32(); need(n); stack.push(data.slice(p, p + n)); p += n; break; } // BINBYTES
      case 0x63: { const m = line(); stack.push(global(m, line())); break; } // GLOBAL
      case 0x93: { const n = pop(); const m = pop(); stack.push(global(String(m), String(n))); break; } // STACK_GLOBAL
      case 0x51: stack.push(persistent(pop())); break; // BINPERSID
      case 0x4a: need(4); stack.push(view.getInt32(p, true)); p += 4; break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: { // LONG1
        const n = u8();
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]!);
        if (n > 0 && data[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      }
      case 0x47: need(8); stack.push(view.getFloat64(p, false)); p += 8; break; // BINFLOAT (big endian)
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x52: { const args = pop(); stack.push(reduce(pop(), args)); break; } // REDUCE
      case 0x62: { // BUILD: only dict state (OrderedDict's _metadata), which weights do not need
        pop();
        if (!(top() instanceof Map)) throw new GatedError('unsupported_format', 'pickle: BUILD on an object that is not a dict');
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x61: { const v = pop(); asList(top()).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); asList(top()).push(...items); break; } // APPENDS
      default:
        throw new GatedError('unsupported_format', `pickle opcode 0x${op.toString(16)} at byte ${p - 1} is not allowed in a weights file`);
    }
  }
}

// --- internal ---

function memoGet(memo: Map<number, unknown>, i: number): unknown {
  if (!memo.has(i)) throw new GatedError('unsupported_format', `pickle: memo ${i} is unset`);
  return memo.get(i);
}

function asList(x: unknown): unknown[] {
  if (!Array.isArray(x)) throw new GatedError('unsupported_format', 'pickle: APPEND on a non-list');
  return x;
}

function isGlobal(x: unknown): x is PyGlobal {
  return typeof x === 'object' && x !== null && (x as PyGlobal).kind === 'global';
}

function persistent(pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || !isGlobal(pid[1])) throw new GatedError('unsupported_format', 'pickle: persistent id is not a storage');
  const cls = pid[1].name.replace(/^torch\./, '');
  const dtype = STORAGES[cls];
  if (!dtype) throw new GatedError('unsupported_format', `pickle: storage type ${pid[1].name} is not supported`);
  return { kind: 'storage', dtype, key: String(pid[2]), numel: Number(pid[4]) };
}

function reduce(fn: unknown, args: unknown): unknown {
  if (!isGlobal(fn) || !Array.isArray(args)) throw new GatedError('unsupported_format', 'pickle: REDUCE needs an allowed callable and a tuple');
  switch (fn.name) {
    case 'collections.OrderedDict':
      return new Map();
    case 'torch._utils._rebuild_tensor_v2': {
      const [storage, offset, shape, stride] = args as [StorageRef, number, number[], number[]];
      if (!storage || storage.kind !== 'storage' || !Array.isArray(shape) || !Array.isArray(stride)) {
        throw new GatedError('unsupported_format', 'pickle: malformed tensor record');
      }
      return { kind: 'tensor', storage, offset: Number(offset), shape: shape.map(Number), stride: stride.map(Number) } satisfies TensorRef;
    }
    case 'torch._utils._rebuild_parameter':
      return args[0];
    default:
      throw new GatedError('unsupported_format', `pickle: '${fn.name}' cannot be called`);
  }
}
