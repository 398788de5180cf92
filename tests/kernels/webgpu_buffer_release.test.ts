/**
 * Buffer release on our WebGPU backend (SwiftShader): a tensor disposed while the command batch being recorded
 * still reads it gives its buffer back at once (tfjs held it to the next submit), and results stay right when that
 * buffer is handed out again inside the same batch; disposeReleasing and releaseIdleBuffers give buffers back to
 * the device rather than to the pool.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { disposeReleasing, pendingRelease, releaseIdleBuffers, type WebGPUBackend } from '../../kernels/_webgpu_internal.ts';

interface Manager {
  numBytesUsed: number;
  numBytesAllocated: number;
  numFreeBuffers: number;
}
let bm: Manager;
let gpu: { dispatchCountInPass: number };

beforeAll(async () => {
  await selectDevice('webgpu', { allowSoftware: true });
  gpu = tf.backend() as unknown as typeof gpu;
  expect((tf.backend() as unknown as WebGPUBackend).device).toBeDefined();
  bm = (gpu as unknown as { bufferManager: Manager }).bufferManager;
});
afterAll(async () => {
  await selectDevice('cpu');
});

// 4096 values: large enough that tfjs-webgpu runs the ops on the GPU rather than on the CPU (tf.range itself is
// made on the CPU: adding 0 puts it in a GPU buffer)
const N = 4096;
const ramp = () => tf.tidy(() => tf.add(tf.range(0, N, 1, 'float32'), 0));

it('a tensor read by unsubmitted work frees its buffer at dispose, and its reuse in the same batch reads right', async () => {
  for (const immediate of [false, true]) {
    pendingRelease.immediate = immediate;
    try {
      const x = ramp();
      await x.data(); // uploaded, batch submitted
      const a = tf.add(x, 1); // recorded, not submitted
      const b = tf.mul(a, 2); // reads a
      expect(gpu.dispatchCountInPass).toBeGreaterThan(0);
      const used = bm.numBytesUsed;
      a.dispose();
      // deferred (tfjs): still in use until the submit; immediate: back in the pool now
      expect(used - bm.numBytesUsed).toBe(immediate ? N * 4 : 0);
      const c = tf.sub(b, 3); // may get a's buffer, recorded after b read it
      const d = tf.add(c, c);
      const [bv, dv] = await Promise.all([b.data(), d.data()]);
      for (const i of [0, 1, 777, N - 1]) {
        expect(bv[i]).toBe((i + 1) * 2);
        expect(dv[i]).toBe(((i + 1) * 2 - 3) * 2);
      }
      tf.dispose([x, b, c, d]);
    } finally {
      pendingRelease.immediate = true;
    }
  }
});

it('disposeReleasing gives a buffer back to the device (a shared one stays), releaseIdleBuffers empties the pool', async () => {
  const w = ramp();
  await w.data();
  const view = tf.reshape(w, [64, 64]); // the same data
  const before = bm.numBytesAllocated;
  disposeReleasing([w]);
  expect(bm.numBytesAllocated).toBe(before); // the view still holds it
  expect(Array.from(await view.data()).slice(0, 3)).toEqual([0, 1, 2]);
  disposeReleasing([view]);
  expect(before - bm.numBytesAllocated).toBe(N * 4);
  const t = tf.mul(ramp(), 3);
  await t.data();
  t.dispose();
  expect(bm.numFreeBuffers).toBeGreaterThan(0);
  releaseIdleBuffers();
  expect(bm.numFreeBuffers).toBe(0);
  expect(bm.numBytesAllocated).toBe(bm.numBytesUsed);
  // work goes on with fresh buffers
  const u = tf.add(ramp(), 5);
  expect((await u.data())[10]).toBe(15);
  u.dispose();
});
