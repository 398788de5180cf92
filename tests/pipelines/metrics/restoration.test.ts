/** PSNR and SSIM against scikit-image on a real image (skimage's camera) with noise. */
import { describe, expect, it } from 'vitest';
import { psnr, ssim } from '../../../pipelines/metrics/restoration.ts';
import { pythonJson } from '../../_helpers/python.ts';

const ORACLE = `
import json, base64, numpy as np
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
ref = data.camera()[100:164, 200:290].astype(np.float64)
rng = np.random.default_rng(3)
noisy = np.clip(ref + rng.normal(0, 20, ref.shape), 0, 255)
print(json.dumps({'w': ref.shape[1], 'h': ref.shape[0],
  'ref': base64.b64encode(ref.astype('<f8').tobytes()).decode(), 'noisy': base64.b64encode(noisy.astype('<f8').tobytes()).decode(),
  'psnr': peak_signal_noise_ratio(ref, noisy, data_range=255), 'ssim': structural_similarity(ref, noisy, data_range=255)}))
`;

describe('restoration metrics vs skimage', () => {
  it('PSNR and SSIM agree to 1e-9', () => {
    const o = pythonJson<{ w: number; h: number; ref: string; noisy: string; psnr: number; ssim: number }>(ORACLE);
    const dec = (s: string) => {
      const b = Buffer.from(s, 'base64');
      return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    };
    // numpy rows are C order: row j, column i at j*w + i, which is our x-fastest layout
    const ref = dec(o.ref);
    const noisy = dec(o.noisy);
    expect(psnr(ref, noisy, 255)).toBeCloseTo(o.psnr, 9);
    expect(ssim(ref, noisy, o.w, o.h, 255)).toBeCloseTo(o.ssim, 9);
    expect(ssim(ref, ref, o.w, o.h, 255)).toBeCloseTo(1, 12);
  });
});
