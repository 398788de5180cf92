/**
 * Builds the `brain` model's training set from Debian's mricron-data: Colin27 T1 (`ch2.nii.gz`, 1 mm) with
 * its brain-extracted twin (`ch2bet.nii.gz` > 0) as the mask, plus the same pair 2×2×2 block-averaged to 2 mm
 * (the resolution of the bundled sample; mask = majority of the block), in nnU-Net layout:
 *   <out>/imagesTr/colin27_1mm_0000.nii.gz, <out>/labelsTr/colin27_1mm.nii.gz, ... _2mm ...
 * Usage: tsx scripts/brain_dataset.ts <out> [templates folder, default /usr/share/mricron/templates]
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.ts';
import { loadInputDirect } from '../io/load.ts';
import { writeNifti } from '../io/nifti/write.ts';
import { realValues, type Volume } from '../io/volume.ts';

const [out, templates = '/usr/share/mricron/templates'] = process.argv.slice(2);
if (!out) {
  process.stderr.write('usage: tsx scripts/brain_dataset.ts <out> [templates folder]\n');
  process.exit(2);
}

const load = async (f: string) => (await loadInputDirect(join(templates, f))).volumes[0]!;
const t1 = await load('ch2.nii.gz');
const bet = await load('ch2bet.nii.gz');
const betReal = realValues(bet);
const mask = Uint8Array.from(betReal, (v) => (v > 0 ? 1 : 0));
const maskVol: Volume = { ...bet, data: mask, dtype: 'uint8', meta: { ...bet.meta, rescale: undefined, warnings: [] } };
delete maskVol.meta.rescale;

await mkdir(join(out, 'imagesTr'), { recursive: true });
await mkdir(join(out, 'labelsTr'), { recursive: true });
const write = (p: string, v: Volume) => writeFileAtomic(join(out, p), writeNifti(v, { gzip: true }));
await write('imagesTr/colin27_1mm_0000.nii.gz', t1);
await write('labelsTr/colin27_1mm.nii.gz', maskVol);
await write('imagesTr/colin27_2mm_0000.nii.gz', downsample(t1, realValues(t1), 'mean'));
await write('labelsTr/colin27_2mm.nii.gz', downsample(maskVol, Float64Array.from(mask), 'majority'));
process.stdout.write(`wrote ${out}/imagesTr and ${out}/labelsTr (1 mm and 2 mm pairs)\n`);

/** 2×2×2 blocks; the centre of each output voxel is the centre of its block (origin shifted half a voxel). */
function downsample(v: Volume, real: Float64Array, mode: 'mean' | 'majority'): Volume {
  const [nx, ny, nz] = v.shape as [number, number, number];
  const [ox, oy, oz] = [Math.floor(nx / 2), Math.floor(ny / 2), Math.floor(nz / 2)];
  const data = new Uint8Array(ox * oy * oz);
  for (let z = 0; z < oz; z++) {
    for (let y = 0; y < oy; y++) {
      for (let x = 0; x < ox; x++) {
        let s = 0;
        for (let dz = 0; dz < 2; dz++) for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) s += real[2 * x + dx + nx * (2 * y + dy + ny * (2 * z + dz))]!;
        data[x + ox * (y + oy * z)] = mode === 'mean' ? Math.round(s / 8) : s >= 4 ? 1 : 0;
      }
    }
  }
  const a = v.affine.map((r) => [...r]);
  for (let i = 0; i < 3; i++) {
    a[i]![3] = a[i]![3]! + 0.5 * (a[i]![0]! + a[i]![1]! + a[i]![2]!);
    for (let j = 0; j < 3; j++) a[i]![j] = a[i]![j]! * 2;
  }
  return { ...v, data, dtype: 'uint8', shape: [ox, oy, oz], spacing: v.spacing.slice(0, 3).map((s) => s * 2), affine: a, meta: { ...v.meta, warnings: [] } };
}
