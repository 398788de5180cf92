/**
 * Plain native slices of a folder are read from each file straight into the volume (loadInput's folder
 * items offer readRange). The values must be those of the general decode: BitsStored applied (masked or
 * sign-extended), every slice in its sorted slot; and a file that changed after its header was read goes
 * the general way. Expected values come from numpy, not from our decoder.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import { readDicomItems } from '../../../io/dicom/read_items.ts';
import { loadInput } from '../../../io/load.ts';
import type { InputItem } from '../../../io/types.ts';
import { ORACLES_ON_PATH, pythonJson } from '../../_helpers/python.ts';

const limits = resolveLimits();
const root = mkdtempSync(join(tmpdir(), 'gv-direct-'));

// Slices written in shuffled order (file names do not follow positions), raw words with bits set above
// BitsStored; the expected volume is x-fastest, slices in ascending z.
const MAKE = `
import json, os, sys
import numpy as np
from pydicom.uid import generate_uid
${ORACLES_ON_PATH}
from axial_slice import axial_slice
out, stored, signed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(stored * 10 + signed)
rows, cols, n = 16, 20, 6
raw = rng.integers(0, 65536, size=(n, rows, cols), dtype=np.uint32).astype('<u2')
series, study = generate_uid(), generate_uid()
for k, name in enumerate([3, 0, 5, 1, 4, 2]):
    ds = axial_slice(series, 2.0 * k, raw[k], 1, study=study, bits_stored=stored, signed=signed)
    ds.save_as(os.path.join(out, f'{name:02d}.dcm'), write_like_original=False)
v = raw.astype(np.int64) & ((1 << stored) - 1)
if signed:
    v = np.where(v >= (1 << (stored - 1)), v - (1 << stored), v)
print(json.dumps({'values': v.reshape(-1).tolist()}))
`;

const cases = [
  { name: 'int16, BitsStored 12 (sign-extended)', stored: 12, signed: 1 },
  { name: 'uint16, BitsStored 10 (masked)', stored: 10, signed: 0 },
  { name: 'int16, BitsStored 16 (plain copy)', stored: 16, signed: 1 },
];
const built: Record<string, { dir: string; values: number[] }> = {};

beforeAll(() => {
  for (const c of cases) {
    const dir = join(root, `s${c.stored}-${c.signed}`);
    built[c.name] = { dir, ...pythonJson<{ values: number[] }>(MAKE, [dir, String(c.stored), String(c.signed)]) };
  }
}, 60_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Items whose readRange does what `range` says; without `range`, no readRange (the general path). */
function items(dir: string, range?: (path: string, dst: Uint8Array, position: number, size: number) => boolean): InputItem[] {
  return readdirSync(dir)
    .sort()
    .map((f) => {
      const path = join(dir, f);
      const read = async () => new Uint8Array(readFileSync(path));
      const item: InputItem = { name: f, size: statSync(path).size, read, readHead: async (n) => (await read()).subarray(0, n) };
      if (range) item.readRange = async (dst, position, size) => range(path, dst, position, size);
      return item;
    });
}

describe('slices read straight into the volume', () => {
  it.each(cases.map((c) => c.name))('%s: the folder loads to numpy\'s stored values, slices in position order', async (name) => {
    const { dir, values } = built[name]!;
    const res = await loadInput(dir, { sandbox: false, limits });
    expect(res.rejected).toEqual([]);
    expect(res.volumes[0]!.shape).toEqual([20, 16, 6]);
    expect(Array.from(res.volumes[0]!.data)).toEqual(values);
  });

  it('the direct copy is used when offered and gives what the general decode gives', async () => {
    const { dir, values } = built[cases[0]!.name]!;
    let calls = 0;
    const direct = await readDicomItems(
      items(dir, (path, dst, position, size) => {
        calls++;
        const file = readFileSync(path);
        expect(file.length).toBe(size);
        dst.set(file.subarray(position, position + dst.length));
        return true;
      }),
      { limits },
    );
    expect(calls).toBe(6);
    const general = await readDicomItems(items(dir), { limits });
    expect(Array.from(direct.volumes[0]!.data)).toEqual(values);
    expect(Array.from(general.volumes[0]!.data)).toEqual(values);
  });

  it('a file that changed after its header was read is decoded the general way', async () => {
    const { dir, values } = built[cases[1]!.name]!;
    // the copy reports a changed file after scribbling over the slot: the general decode must overwrite it
    const res = await readDicomItems(
      items(dir, (_path, dst) => {
        dst.fill(0xab);
        return false;
      }),
      { limits },
    );
    expect(res.rejected).toEqual([]);
    expect(Array.from(res.volumes[0]!.data)).toEqual(values);
  });
});
