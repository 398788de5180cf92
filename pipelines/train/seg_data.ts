/**
 * Segmentation training data: nnU-Net-style `imagesTr/<case>_0000.nii[.gz]` + `labelsTr/<case>.nii[.gz]`, or
 * 2D `images/<name>.png` + `masks/<name>.png`. Every case goes through the model's own preprocessing (canonical
 * grid, normalisation) exactly as inference will. Validation: whole held-out cases when there are at least five,
 * otherwise held-out slabs of each volume (with a gap of `context` slices, so no training stack sees them).
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GatedError } from '../../core/errors.ts';
import { affinesClose } from '../../io/geometry.ts';
import { loadInput } from '../../io/load.ts';
import { toCanonical } from '../../io/orient.ts';
import { realValues, type Volume } from '../../io/volume.ts';
import { preprocess } from '../preprocess.ts';
import { backgroundLevel, resampledSize, resampleInPlane, sliceGeometry, writeSliceStack, type SliceGeometry } from '../slices.ts';
import type { TaskInput } from '../task_model.ts';
import { warpSample, augmentIntensity, type AugmentConfig } from './augment.ts';
import type { Rng } from './rng.ts';

export interface SegCase {
  name: string;
  image: Float32Array;
  labels: Uint8Array;
  shape: number[];
  spacing: number[];
  geo: SliceGeometry;
  bg: number;
  /** Indices (x + nx·y) of foreground voxels per slice, for foreground-biased sampling. */
  fg: Int32Array[];
}

export interface SlabSplit {
  train: { c: number; z: number }[];
  val: { c: number; zs: number[] }[];
  description: string;
}

export async function loadSegDataset(dir: string, input: TaskInput, trusted = true): Promise<SegCase[]> {
  const pairs = await findPairs(dir);
  const cases: SegCase[] = [];
  for (const { name, image: imagePath, label } of pairs) {
    const img = await loadOne(imagePath, trusted);
    const lab = await loadOne(label, trusted);
    if (img.shape.slice(0, 3).join() !== lab.shape.slice(0, 3).join() || !affinesClose(img.affine, lab.affine, 1e-3)) {
      throw new GatedError('bad_geometry', `case '${name}': the label map's grid [${lab.shape}] does not match the image's [${img.shape}] (shape or affine)`);
    }
    const pre = preprocess(img, input.normalization, { canonical: input.canonical });
    const labC = input.canonical ? toCanonical(lab) : lab;
    const real = realValues(labC);
    const labels = new Uint8Array(real.length);
    for (let i = 0; i < real.length; i++) {
      const v = real[i]!;
      if (!(v >= 0 && v < 256 && Number.isInteger(v))) throw new GatedError('config', `case '${name}': label value ${v} is not an integer class in 0..255`);
      labels[i] = v;
    }
    let shape = pre.volume.shape.slice(0, 3);
    let image = pre.data;
    let labs = labels;
    const spacing = pre.volume.spacing.slice(0, 3);
    const [ox, oy] = resampledSize(shape[0]!, shape[1]!, spacing, input.spacing);
    if (ox !== shape[0] || oy !== shape[1]) {
      image = resampleInPlane(image, shape, ox, oy, 'linear');
      labs = resampleInPlane(labs, shape, ox, oy, 'nearest');
      spacing[0] = (spacing[0]! * shape[0]!) / ox;
      spacing[1] = (spacing[1]! * shape[1]!) / oy;
      shape = [ox, oy, shape[2]!];
    }
    const geo = sliceGeometry(shape, input.multipleOf);
    const plane = geo.nx * geo.ny;
    const fg: Int32Array[] = [];
    for (let z = 0; z < geo.nz; z++) {
      const idx: number[] = [];
      for (let i = 0; i < plane; i++) if (labs[z * plane + i]! > 0) idx.push(i);
      fg.push(Int32Array.from(idx));
    }
    cases.push({ name, image, labels: labs, shape, spacing, geo, bg: backgroundLevel(image), fg });
  }
  return cases;
}

export function splitCases(cases: SegCase[], context: number, slabs = 3, slabFraction = 0.1): SlabSplit {
  if (cases.length >= 5) {
    const nVal = Math.max(1, Math.round(cases.length * 0.2));
    const order = cases.map((c, i) => ({ i, key: c.name })).sort((a, b) => a.key.localeCompare(b.key));
    const valIdx = new Set(order.filter((_, k) => k % Math.round(cases.length / nVal) === 0).slice(0, nVal).map((o) => o.i));
    const train: SlabSplit['train'] = [];
    const val: SlabSplit['val'] = [];
    cases.forEach((c, i) => {
      const zs = Array.from({ length: c.geo.nz }, (_, z) => z);
      if (valIdx.has(i)) val.push({ c: i, zs });
      else for (const z of zs) train.push({ c: i, z });
    });
    return { train, val, description: `${val.length} of ${cases.length} cases held out: ${[...valIdx].map((i) => cases[i]!.name).join(', ')}` };
  }
  const train: SlabSplit['train'] = [];
  const val: SlabSplit['val'] = [];
  const parts: string[] = [];
  cases.forEach((c, i) => {
    const nz = c.geo.nz;
    const thick = Math.max(1, Math.round(nz * slabFraction));
    const held = new Set<number>();
    const blocked = new Set<number>();
    const ranges: string[] = [];
    for (let s = 1; s <= slabs; s++) {
      const centre = Math.round((nz * s) / (slabs + 1));
      const z0 = Math.max(0, centre - Math.floor(thick / 2));
      const z1 = Math.min(nz, z0 + thick);
      for (let z = z0; z < z1; z++) held.add(z);
      for (let z = z0 - context; z < z1 + context; z++) blocked.add(z);
      ranges.push(`${z0}-${z1 - 1}`);
    }
    val.push({ c: i, zs: [...held].sort((a, b) => a - b) });
    for (let z = 0; z < nz; z++) if (!blocked.has(z)) train.push({ c: i, z });
    parts.push(`${c.name}: axial slices ${ranges.join(', ')} of ${nz} (canonical grid)`);
  });
  return { train, val, description: `held-out slabs (${slabs} × ${Math.round(slabFraction * 100)} %, ${context}-slice gap): ${parts.join('; ')}` };
}

/** One augmented batch: x [B, P, P, C] and labels [B, P, P]. */
export function makeBatch(cases: SegCase[], samples: { c: number; z: number }[], context: number, P: number, aug: AugmentConfig, rng: Rng, fgBias = 0.67): { x: Float32Array; y: Uint8Array } {
  const C = 2 * context + 1;
  const B = samples.length;
  const x = new Float32Array(B * P * P * C);
  const y = new Uint8Array(B * P * P);
  samples.forEach(({ c, z }, b) => {
    const k = cases[c]!;
    const { nx, ny, H, W } = k.geo;
    const stack = new Float32Array(H * W * C);
    writeSliceStack(k.image, k.geo, z, context, k.bg, stack);
    const lab = new Uint8Array(H * W);
    for (let yy = 0; yy < ny; yy++) lab.set(k.labels.subarray(z * nx * ny + yy * nx, z * nx * ny + (yy + 1) * nx), yy * W);
    const fg = k.fg[z]!;
    let cy: number;
    let cx: number;
    if (fg.length > 0 && rng.next() < fgBias) {
      const i = fg[rng.int(fg.length)]!;
      cy = Math.floor(i / nx);
      cx = i % nx;
    } else {
      cy = rng.uniform(0, ny - 1);
      cx = rng.uniform(0, nx - 1);
    }
    // pull the centre towards the slice centre so a patch larger than the slice covers it whole
    cy = (cy + (ny - 1) / 2) / 2;
    cx = (cx + (nx - 1) / 2) / 2;
    const xs = x.subarray(b * P * P * C, (b + 1) * P * P * C);
    warpSample(stack, lab, H, W, C, xs, y.subarray(b * P * P, (b + 1) * P * P), P, cy, cx, k.bg, aug, rng);
    augmentIntensity(xs, P, C, k.bg, aug, rng);
  });
  return { x, y };
}

// --- internal ---

async function findPairs(dir: string): Promise<{ name: string; image: string; label: string }[]> {
  const layouts: [string, string, (f: string) => string | null, (n: string) => string[]][] = [
    ['imagesTr', 'labelsTr', (f) => /^(.+)_0000\.nii(\.gz)?$/.exec(f)?.[1] ?? null, (n) => [`${n}.nii.gz`, `${n}.nii`]],
    ['images', 'masks', (f) => /^(.+)\.(png|tif|tiff|nii|nii\.gz)$/i.exec(f)?.[1] ?? null, (n) => ['png', 'tif', 'tiff', 'nii.gz', 'nii'].map((e) => `${n}.${e}`)],
  ];
  for (const [imgDir, labDir, caseOf, labelNames] of layouts) {
    if (!existsSync(join(dir, imgDir)) || !existsSync(join(dir, labDir))) continue;
    const files = (await readdir(join(dir, imgDir))).sort();
    const pairs: { name: string; image: string; label: string }[] = [];
    const missing: string[] = [];
    for (const f of files) {
      const name = caseOf(f);
      if (!name) continue;
      const label = labelNames(name).map((l) => join(dir, labDir, l)).find((p) => existsSync(p));
      if (label) pairs.push({ name, image: join(dir, imgDir, f), label });
      else missing.push(name);
    }
    if (missing.length) throw new GatedError('config', `${missing.length} image(s) in ${imgDir}/ have no label map in ${labDir}/ (first: ${missing[0]})`);
    if (pairs.length === 0) throw new GatedError('config', `${imgDir}/ holds no training images`);
    return pairs;
  }
  throw new GatedError('config', `${dir} holds neither imagesTr/ + labelsTr/ (NIfTI, nnU-Net layout) nor images/ + masks/`);
}

async function loadOne(path: string, trusted: boolean): Promise<Volume> {
  const res = await loadInput(path, { sandbox: !trusted });
  if (res.volumes.length !== 1) throw new GatedError('config', `${path} holds ${res.volumes.length} volumes; a training case must hold one`);
  return res.volumes[0]!;
}
