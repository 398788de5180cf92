/**
 * On WebGPU (SwiftShader here) a group of slices goes up in pieces through one reused host array: every piece
 * must have left for the device before the array is refilled, so the joined tensor equals the stored slices.
 */
import { afterAll, expect, it } from 'vitest';
import { selectDevice } from '../../kernels/backend.ts';
import { uploadSlices } from '../../pipelines/segment_volume.ts';

afterAll(async () => {
  await selectDevice('cpu');
});

it('pieces uploaded through one scratch array join into the stored slices', async () => {
  await selectDevice('webgpu', { allowSoftware: true });
  const [nx, ny, nz] = [33, 20, 17];
  const plane = nx * ny;
  const data = Int16Array.from({ length: plane * nz }, (_, i) => ((i * 7919) % 4001) - 2000);
  // 3 slices per piece: pieces of 3, 3, 3, 3 and a last one of 2 for [1, 15)
  for (const [z0, z1] of [[1, 15], [0, 17]] as const) {
    const t = uploadSlices(data, z0, z1, plane, ny, nx, 3 * plane + 5);
    const got = (await t.data()) as Float32Array;
    t.dispose();
    expect(got.length).toBe((z1 - z0) * plane);
    let same = 0;
    for (let i = 0; i < got.length; i++) if (got[i] === data[z0 * plane + i]) same++;
    expect(same).toBe(got.length);
  }
}, 60_000);
