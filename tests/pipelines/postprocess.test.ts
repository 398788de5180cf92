/** Largest-component and hole filling against scipy.ndimage (label with 6-connectivity, binary_fill_holes). */
import { expect, it } from 'vitest';
import { fillHoles, keepLargestComponent } from '../../pipelines/postprocess.ts';
import { pythonJson } from '../_helpers/python.ts';

const ORACLE = `
import sys, json, numpy as np
from scipy import ndimage
rng = np.random.default_rng(int(sys.argv[1]))
shape = (23, 17, 11)
smooth = ndimage.gaussian_filter(rng.standard_normal(shape), 1.2)
m = (smooth > 0.05).astype(np.uint8)
lab, n = ndimage.label(m)
sizes = ndimage.sum(m, lab, range(1, n + 1))
lcc = (lab == 1 + int(np.argmax(sizes))).astype(np.uint8) if n else m
filled = ndimage.binary_fill_holes(m).astype(np.uint8)
f = lambda a: a.transpose(2, 1, 0).ravel().tolist()  # x fastest
print(json.dumps({'mask': f(m), 'lcc': f(lcc), 'filled': f(filled), 'n': int(n)}))
`;

for (const seed of [1, 2, 3]) {
  it(`matches scipy on random blobs (seed ${seed})`, () => {
    const o = pythonJson<{ mask: number[]; lcc: number[]; filled: number[]; n: number }>(ORACLE, [String(seed)]);
    expect(o.n).toBeGreaterThan(1); // several components, so keeping the largest changes something
    const shape = [23, 17, 11]; // x fastest: numpy axis 0
    const a = Uint8Array.from(o.mask);
    keepLargestComponent(a, shape, 1);
    expect(Array.from(a)).toEqual(o.lcc);
    const b = Uint8Array.from(o.mask);
    fillHoles(b, shape, 1);
    expect(Array.from(b)).toEqual(o.filled);
  });
}

it('leaves other classes alone', () => {
  const labels = Uint8Array.from([1, 0, 2, 2, 0, 1, 1, 0, 2]);
  keepLargestComponent(labels, [9, 1, 1], 1);
  expect(Array.from(labels)).toEqual([0, 0, 2, 2, 0, 1, 1, 0, 2]);
});
