/** Intensity normalisation against numpy on the bundled Colin27 sample; invariance to intensity scaling. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveLimits } from '../../core/limits.ts';
import { readNifti } from '../../io/nifti/read.ts';
import { normalize, preprocess } from '../../pipelines/preprocess.ts';
import { pythonJson } from '../_helpers/python.ts';

const SAMPLE = join(import.meta.dirname, '..', '..', 'models', 'samples', 'colin27_t1_2mm.nii.gz');

describe('preprocess', () => {
  it('percentile z-score equals numpy (clip to the 0.5/99.5 percentiles of nonzero voxels, then z-score)', () => {
    const v = readNifti(new Uint8Array(readFileSync(SAMPLE)), { limits: resolveLimits() }, 'colin');
    const { data, volume } = preprocess(v, { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5, nonzeroOnly: true });
    const ref = pythonJson<{ stats: number[]; probe: number[] }>(
      `import json,sys,numpy as np,nibabel as nib
img = nib.as_closest_canonical(nib.load(sys.argv[1])); a = np.asarray(img.dataobj).astype(np.float64)
fg = a[a != 0]; lo, hi = np.quantile(fg, [0.005, 0.995]); c = np.clip(fg, lo, hi); m, s = c.mean(), c.std()
z = np.where(a != 0, (np.clip(a, lo, hi) - m) / s, 0).ravel(order='F')
print(json.dumps({'stats': [float(z.mean()), float(z.std())], 'probe': [float(z[i]) for i in range(0, z.size, 9973)]}))`,
      [SAMPLE],
    );
    expect(volume.meta.orientation).toBe('RAS');
    const probes = ref.probe.map((_, k) => data[k * 9973]!);
    probes.forEach((p, k) => expect(p).toBeCloseTo(ref.probe[k]!, 4));
  });

  it('is invariant to a global intensity scale and offset of the foreground (what MR scanners vary)', () => {
    const base = Float64Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? 0 : 100 + 50 * Math.sin(i)));
    const scaled = base.map((x) => (x === 0 ? 0 : 3.7 * x + 12));
    const a = normalize(base, { kind: 'percentile_zscore', lowPercentile: 1, highPercentile: 99, nonzeroOnly: true });
    const b = normalize(scaled, { kind: 'percentile_zscore', lowPercentile: 1, highPercentile: 99, nonzeroOnly: true });
    let max = 0;
    for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
    expect(max).toBeLessThan(1e-4);
  });

  it('CT window clips and scales to [0, 1]', () => {
    const out = normalize([-2000, -160, 40, 240, 3000], { kind: 'window', lo: -160, hi: 240 });
    expect(Array.from(out)).toEqual([0, 0, 0.5, 1, 1]);
    expect(() => normalize([1], { kind: 'window', lo: 5, hi: 5 })).toThrow(/empty/);
  });
});

describe('normaliser statistics', () => {
  it('histogram statistics of integer volumes equal sorted statistics of their real values', async () => {
    const { normalizerFor } = await import('../../pipelines/preprocess.ts');
    const stored = Int16Array.from({ length: 20011 }, (_, i) => ((i * 7919) % 3001) - 1000 + (i % 13 === 0 ? 0 : 17));
    const slope = 0.5;
    const inter = 3;
    const real = Float64Array.from(stored, (x) => x * slope + inter);
    for (const nonzeroOnly of [false, true]) {
      const norm = { kind: 'percentile_zscore', lowPercentile: 0.5, highPercentile: 99.5, nonzeroOnly } as const;
      const h = normalizerFor(stored, slope, inter, norm, true);
      const s = normalizerFor(real, 1, 0, norm, false);
      for (const k of ['lo', 'hi', 'scale', 'offset'] as const) expect(h[k]).toBeCloseTo(s[k], 9);
    }
  });
});
