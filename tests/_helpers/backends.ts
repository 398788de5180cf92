/**
 * describeBackends: one describe block per backend, each starting its backend first (webgpu on SwiftShader,
 * which selectDevice points Vulkan at when software adapters are allowed). Also the fast-vs-reference helper.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { setForceReference } from '../../kernels/flags.ts';

export type TestBackend = 'cpu' | 'wasm' | 'webgpu';

export function describeBackends(name: string, backends: TestBackend[], body: (backend: TestBackend) => void): void {
  for (const b of backends) {
    describe(`${name} [${b}]`, () => {
      beforeAll(async () => {
        await selectDevice(b, { allowSoftware: true });
        if (tf.getBackend() !== b) throw new Error(`backend ${b} did not start`);
      });
      body(b);
    });
  }
}

/** Runs f through the registered kernels, then through the references only. */
export function fastAndReference<T>(f: () => T): [T, T] {
  const fast = f();
  setForceReference(true);
  try {
    return [fast, f()];
  } finally {
    setForceReference(false);
  }
}
