/**
 * Decoders for encapsulated frames. WebAssembly codecs are instantiated once per process, on first use;
 * they run inside the decoding sandbox, where a codec crash fails one input and nothing else.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { GatedError, toGatedError } from '../../core/errors.ts';
import type { Codec } from './transfer_syntax.ts';
import { decodeRle } from './rle.ts';

const require = createRequire(import.meta.url);

export interface FrameSpec {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  pixelRepresentation: 0 | 1;
  photometric?: string;
}

/**
 * Decoded frame bytes in the native layout (little endian, samples interleaved, unsigned/signed as stored).
 * With `use`, the bytes are handed to it synchronously as they come out of the decoder (for WebAssembly
 * codecs a view on the codec's own memory, valid only during the call; the promise then holds nothing of
 * them): a series decodes slice after slice without a garbage buffer per slice.
 */
export async function decodeFrame(codec: Codec, data: Uint8Array, spec: FrameSpec, use?: (decoded: Uint8Array) => void): Promise<Uint8Array> {
  const own = (b: Uint8Array) => {
    use?.(b);
    return b;
  };
  try {
    switch (codec) {
      case 'rle':
        return own(decodeRle(data, spec));
      case 'jpeg': {
        const precision = sofPrecision(data);
        if (precision === 12) return own(await decodeJpeg12(data, spec));
        if (precision > 8) {
          throw new GatedError('unsupported_transfer_syntax', `${precision}-bit lossy JPEG (JPEG Extended, 1.2.840.10008.1.2.4.51) has no decoder here; transcode to a lossless syntax`);
        }
        return await wasmDecode('jpeg', spec.samplesPerPixel === 3 && spec.photometric === 'RGB' ? withoutColourTransform(data) : data, spec, use);
      }
      case 'jpeg-ls':
        return await wasmDecode('jpeg-ls', data, spec, use);
      case 'j2k':
        return await wasmDecode('j2k', data, spec, use);
      case 'htj2k':
        return await wasmDecode('htj2k', data, spec, use);
      case 'jpeg-lossless':
        return own(decodeJpegLossless(data, spec));
      default:
        throw new GatedError('internal', `no decoder for ${codec}`);
    }
  } catch (e) {
    // A C++ exception leaves an Emscripten codec as a bare number, the address of the exception object: it
    // depends on what the codec instance decoded before, so it is no message (and would differ between
    // decoding threads).
    if (typeof e === 'number') throw new GatedError('decode_failed', `${codec} frame: the decoder rejected the codestream`);
    throw toGatedError(e, 'decode_failed', `${codec} frame`);
  }
}

// --- internal ---

export type WasmKind = 'jpeg' | 'jpeg-ls' | 'j2k' | 'htj2k';
interface WasmDecoder {
  getEncodedBuffer(n: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean };
  delete(): void;
}

const MODULES: Record<WasmKind, { pkg: string; cls: string }> = {
  jpeg: { pkg: '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs', cls: 'JPEGDecoder' },
  'jpeg-ls': { pkg: '@cornerstonejs/codec-charls/decodewasmjs', cls: 'JpegLSDecoder' },
  j2k: { pkg: '@cornerstonejs/codec-openjpeg/decodewasmjs', cls: 'J2KDecoder' },
  htj2k: { pkg: '@cornerstonejs/codec-openjph/wasmjs', cls: 'HTJ2KDecoder' },
};
const loaded = new Map<WasmKind, Promise<Record<string, new () => WasmDecoder>>>();

/** The WebAssembly codec of a transfer syntax's codec, if it has one. */
export function wasmKindOf(codec: Codec): WasmKind | undefined {
  return codec === 'jpeg' || codec === 'jpeg-ls' || codec === 'j2k' || codec === 'htj2k' ? codec : undefined;
}

/** The project's type libraries declare no WebAssembly API: the part used here. */
export interface WasmApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<object>;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const compiled = new Map<WasmKind, Promise<object | undefined>>();

/**
 * The codec's compiled WebAssembly module (compiled once per process and handed to the decoding threads,
 * which then only instantiate it); undefined where the package keeps no .wasm beside its script.
 */
export function compiledCodec(kind: WasmKind): Promise<object | undefined> {
  let c = compiled.get(kind);
  if (!c) {
    c = (async () => {
      try {
        return await wasm.compile(await readFile(require.resolve(MODULES[kind].pkg).replace(/\.js$/, '.wasm')));
      } catch {
        return undefined; // the codec's own loader finds (or fails to find) its code
      }
    })();
    compiled.set(kind, c);
  }
  return c;
}

/** Takes a module compiled on another thread (see compiledCodec), unless this thread has one already. */
export function provideCompiledCodec(kind: WasmKind, module: object): void {
  if (!compiled.has(kind)) compiled.set(kind, Promise.resolve(module));
}

/** Starts loading a codec now (compiling on V8's background threads), so that its first frame does not wait. */
export function preloadCodec(codec: Codec): void {
  const kind = wasmKindOf(codec);
  if (kind) module(kind).catch(() => undefined); // a failure is reported by the first decode
}

function module(kind: WasmKind): Promise<Record<string, new () => WasmDecoder>> {
  let m = loaded.get(kind);
  if (!m) {
    type Factory = (opts: object) => Promise<Record<string, new () => WasmDecoder>>;
    const factory = require(MODULES[kind].pkg) as Factory | { default: Factory };
    const create = typeof factory === 'function' ? factory : factory.default;
    m = compiledCodec(kind).then(
      (code) =>
        new Promise((resolve, reject) => {
          // Emscripten's hook: instantiate the module compiled once instead of reading and compiling it
          // here (a failure must reject here: the codec's loader would wait for `done` forever)
          const instantiateWasm = (imports: object, done: (instance: object, module: object) => void) => {
            wasm.instantiate(code!, imports).then((i) => done(i, code!), reject);
            return {};
          };
          // The codecs log progress through print/printErr; their messages are not ours to show.
          create({ print: () => undefined, printErr: () => undefined, ...(code ? { instantiateWasm } : {}) }).then(resolve, reject);
        }),
    );
    loaded.set(kind, m);
  }
  return m;
}

/**
 * A fresh decoder per frame: a reused one can report the previous frame's size (and hold its pixels)
 * after a codestream it could not decode. Its output is handed to `use` straight from the codec's memory,
 * before the decoder is released, so a frame leaves no copy behind for the garbage collector.
 */
async function wasmDecode(kind: WasmKind, data: Uint8Array, spec: FrameSpec, use?: (decoded: Uint8Array) => void): Promise<Uint8Array> {
  const mod = await module(kind);
  const dec = new mod[MODULES[kind].cls]!();
  try {
    dec.getEncodedBuffer(data.length).set(data);
    dec.decode();
    const info = dec.getFrameInfo();
    if (info.width === 0 || info.height === 0) throw new GatedError('decode_failed', 'the codestream could not be decoded');
    if (info.width !== spec.columns || info.height !== spec.rows) {
      throw new GatedError('bad_geometry', `codestream is ${info.width}x${info.height}; the header says ${spec.columns}x${spec.rows}`);
    }
    if (info.componentCount !== spec.samplesPerPixel) {
      throw new GatedError('bad_geometry', `codestream has ${info.componentCount} components; the header says ${spec.samplesPerPixel}`);
    }
    const out = dec.getDecodedBuffer();
    if (use) {
      use(out);
      return new Uint8Array(0);
    }
    // copy out of the wasm heap before the decoder (and its memory) is released
    return new Uint8Array(out);
  } finally {
    dec.delete();
  }
}

/**
 * DICOM's PhotometricInterpretation RGB means the JPEG components are R, G, B, but libjpeg assumes YCbCr
 * for 3-component streams without an Adobe marker. Inserting an Adobe APP14 segment with transform 0
 * right after SOI tells the decoder not to convert; streams that already carry a complete Adobe APP14
 * are left alone (pydicom's Pillow path makes the same distinction).
 */
export function withoutColourTransform(data: Uint8Array): Uint8Array {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) return data;
  for (let i = 2; i + 4 <= data.length; ) {
    if (data[i] !== 0xff) break;
    const marker = data[i + 1]!;
    const len = (data[i + 2]! << 8) | data[i + 3]!;
    // only a complete Adobe segment (with its transform byte) counts, as for libjpeg and Pillow
    if (marker === 0xee && len >= 14 && String.fromCharCode(...data.subarray(i + 4, i + 9)) === 'Adobe') return data;
    if (marker === 0xda || marker === 0xd9) break;
    i += 2 + len;
  }
  const app14 = [0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00];
  const out = new Uint8Array(data.length + app14.length);
  out.set(data.subarray(0, 2));
  out.set(app14, 2);
  out.set(data.subarray(2), 2 + app14.length);
  return out;
}

/** Sample precision from the first SOF segment of a JPEG stream (0 when none is found). */
function sofPrecision(data: Uint8Array): number {
  for (let i = 2; i + 4 < data.length && data[i] === 0xff; ) {
    const marker = data[i + 1]!;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return data[i + 4]!;
    if (marker === 0xda || marker === 0xd9) break;
    i += 2 + ((data[i + 2]! << 8) | data[i + 3]!);
  }
  return 0;
}

interface Jpeg12Codecs {
  NativeCodecs: {
    initializeAsync(opts: { logCodecsInfo: boolean; logCodecsTrace: boolean }): Promise<void>;
    decodeJpeg(ctx: unknown, params: { convertColorspaceToRgb: boolean }): { getDecodedBuffer(): Uint8Array | undefined };
  };
  Context: new (attrs: Record<string, unknown>) => unknown;
}
let jpeg12: Promise<Jpeg12Codecs> | undefined;

/**
 * 12-bit DCT JPEG (process 4). libjpeg-turbo's 8-bit build, used above, cannot; dcmjs-codecs carries
 * the IJG library built for 12-bit samples (the same decoder family as DCMTK's dcmdjpeg and GDCM).
 * Grey only: 12-bit colour JPEG has no test data here, so it stays refused rather than guessed.
 */
async function decodeJpeg12(data: Uint8Array, spec: FrameSpec): Promise<Uint8Array> {
  if (spec.samplesPerPixel !== 1) {
    throw new GatedError('unsupported_transfer_syntax', '12-bit lossy colour JPEG (JPEG Extended, 1.2.840.10008.1.2.4.51) has no decoder here; transcode to a lossless syntax');
  }
  if (spec.bitsAllocated !== 16) throw new GatedError('bad_geometry', `12-bit JPEG samples need BitsAllocated 16; the header says ${spec.bitsAllocated}`);
  jpeg12 ??= (async () => {
    const lib = require('dcmjs-codecs') as Jpeg12Codecs;
    await lib.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    return lib;
  })();
  const { NativeCodecs, Context } = await jpeg12;
  const ctx = new Context({
    width: spec.columns,
    height: spec.rows,
    bitsAllocated: 16,
    bitsStored: 12,
    samplesPerPixel: 1,
    pixelRepresentation: spec.pixelRepresentation,
    planarConfiguration: 0,
    photometricInterpretation: spec.photometric ?? 'MONOCHROME2',
    encodedBuffer: data,
  });
  const out = NativeCodecs.decodeJpeg(ctx, { convertColorspaceToRgb: false }).getDecodedBuffer();
  // the decoder sizes its output from the codestream, so a size mismatch means the header disagrees with it
  if (!out || out.length !== spec.rows * spec.columns * 2) {
    throw new GatedError('bad_geometry', `codestream decodes to ${out?.length ?? 0} bytes; the header says ${spec.columns}x${spec.rows} 16-bit samples`);
  }
  return new Uint8Array(out);
}

function decodeJpegLossless(data: Uint8Array, spec: FrameSpec): Uint8Array {
  const { Decoder } = require('jpeg-lossless-decoder-js') as { Decoder: new () => { decode(buf: ArrayBuffer, offset: number, length: number, numBytes: number): ArrayBuffer | ArrayBufferView } };
  const bytesPerSample = spec.bitsAllocated <= 8 ? 1 : 2;
  const copy = new Uint8Array(data).buffer;
  const out = new Decoder().decode(copy, 0, copy.byteLength, bytesPerSample);
  // the decoder returns a typed array of its sample width (or a bare buffer); keep the bytes, not the values
  return ArrayBuffer.isView(out) ? new Uint8Array(out.buffer, out.byteOffset, out.byteLength) : new Uint8Array(out);
}
