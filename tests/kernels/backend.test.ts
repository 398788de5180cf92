/** Device selection: auto picks the first that starts and says why the others were skipped. */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { selectDevice } from '../../kernels/backend.ts';

describe('selectDevice', () => {
  it('auto: skips tensorflow (not installed) and the software-only WebGPU adapter, lands on wasm', async () => {
    const c = await selectDevice('auto');
    expect(c.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(c.reason).toMatch(/^device wasm: /);
    expect(c.reason).toMatch(/skipped tensorflow \(/);
    expect(c.reason).toMatch(/webgpu \(/);
  });
  it('explicit devices start or fail with a typed error', async () => {
    expect((await selectDevice('cpu')).backend).toBe('cpu');
    await expect(selectDevice('tensorflow')).rejects.toBeInstanceOf(GatedError);
    await expect(selectDevice('nope' as never)).rejects.toMatchObject({ code: 'config' });
  });
});
