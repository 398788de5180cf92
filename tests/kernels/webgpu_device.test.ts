/**
 * The WebGPU device we register asks for the features we use whenever the adapter offers them (tfjs's own
 * factory asks only for timestamp queries), and selecting webgpu twice reuses that one registration.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { WANTED_FEATURES } from '../../kernels/_webgpu_internal.ts';
import { installDawn } from '../../kernels/webgpu_node.ts';

it('webgpu (SwiftShader): the device has every wanted feature the adapter offers', async () => {
  const c = await selectDevice('webgpu', { allowSoftware: true });
  const adapter = await installDawn();
  const offered = WANTED_FEATURES.filter((f) => adapter!.features.includes(f));
  expect(offered.length).toBeGreaterThan(0); // SwiftShader offers timestamp-query and subgroups
  expect(c.features).toEqual(offered);
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  for (const f of offered) expect(device.features.has(f), f).toBe(true);
  const again = await selectDevice('webgpu', { allowSoftware: true });
  expect(again.features).toEqual(c.features);
  expect((tf.backend() as unknown as { device: GPUDevice }).device).toBe(device);
  const t = tf.add(tf.ones([3]), 1);
  expect(Array.from(await t.data())).toEqual([2, 2, 2]);
  t.dispose();
});
