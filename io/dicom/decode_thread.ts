/**
 * A decoding thread of decode_pool.ts: decodes one compressed frame at a time with its own codec instances
 * into a buffer lent by the pool and gives it back (with the codestream's buffer, for the next frame),
 * with BitsStored applied as decodePixels does.
 */
import { parentPort } from 'node:worker_threads';
import { GatedError, toGatedError } from '../../core/errors.ts';
import { decodeFrame, preloadCodec, provideCompiledCodec, wasmKindOf } from './codecs.ts';
import type { CodecMessage, FrameJob } from './decode_pool.ts';
import { storedValues } from './pixels.ts';

const port = parentPort!;
port.on('message', async (msg: FrameJob | CodecMessage) => {
  if ('module' in msg) {
    const kind = wasmKindOf(msg.codec);
    if (kind) provideCompiledCodec(kind, msg.module);
    preloadCodec(msg.codec);
    return;
  }
  const job = msg;
  try {
    const raw = new Uint8Array(job.out, 0, job.frameBytes);
    await decodeFrame(job.codec, job.data, job.spec, (decoded) => {
      if (decoded.length < job.frameBytes) throw new GatedError('decode_failed', `frame ${job.frame} decoded to ${decoded.length} bytes; ${job.frameBytes} expected`);
      raw.set(decoded.subarray(0, job.frameBytes));
    });
    storedValues(raw, job.spec);
    port.postMessage({ id: job.id, out: job.out, data: job.data.buffer }, [job.out, job.data.buffer as ArrayBuffer]);
  } catch (e) {
    port.postMessage({ id: job.id, out: job.out, data: job.data.buffer, error: toGatedError(e, 'decode_failed').toJSON() }, [job.out, job.data.buffer as ArrayBuffer]);
  }
});
