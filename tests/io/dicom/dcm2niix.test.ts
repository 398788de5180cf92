/**
 * DICOM series built from a real volume (Colin27, 90x108x40 at 2 mm) in several geometries and transfer
 * syntaxes, read by readDicomItems and converted by dcm2niix; both compared in canonical (RAS)
 * orientation (ours via toCanonical, dcm2niix's via nibabel's as_closest_canonical): real voxel values
 * exactly, affines within 1e-3 mm. Also the reliability classes D16 (a folder mixing series and
 * defects) and D17 (hostile identifiers never used as names or paths).
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveLimits } from '../../../core/limits.ts';
import { readDicomItems } from '../../../io/dicom/read_items.ts';
import { applyAffine, invert4 } from '../../../io/geometry.ts';
import { toCanonical } from '../../../io/orient.ts';
import type { InputItem } from '../../../io/types.ts';
import { realValues, type Volume } from '../../../io/volume.ts';
import { PYTHON } from '../../_helpers/python.ts';
import { MRICRON, requireData } from '../../_helpers/testdata.ts';

const run = promisify(execFile);
const limits = resolveLimits();
const root = mkdtempSync(join(tmpdir(), 'gv-series-'));
const MAKE = join(import.meta.dirname, '..', '..', '_oracles', 'make_series.py');
const DUMP = `
import json, sys, numpy as np, nibabel as nib
out = {}
for path in sys.argv[1:]:
    img = nib.as_closest_canonical(nib.load(path))
    arr = np.asarray(img.get_fdata(), dtype='<f4')
    open(path + '.f32', 'wb').write(arr.tobytes(order='F'))
    out[path] = {'shape': list(arr.shape), 'affine': img.affine.tolist()}
print(json.dumps(out))
`;
const NX = 90;
const NY = 108;
const NZ = 40;

interface Ref {
  shape: number[];
  affine: number[][];
  data: Float32Array;
}
interface Ours {
  v: Volume;
  real: Float32Array;
  warnings: string[];
  raw: Awaited<ReturnType<typeof readDicomItems>>;
}

const GEOMETRIES = ['axial', 'oblique', 'reversed', 'flipped', 'revrows', 'mr', 'hostile'];
const IRREGULAR = ['missing', 'tilt', 'uneven', 'rescalevar'];
const built: Record<string, { dir: string; positions: number[][] }> = {};

async function build(variant: string): Promise<void> {
  const dir = join(root, variant);
  const { stdout } = await run(PYTHON, [MAKE, dir, variant]);
  built[variant] = { dir, positions: JSON.parse(stdout).positions };
}

/** dcm2niix on a folder → every NIfTI it wrote, by file name, dumped by nibabel in canonical orientation. */
function dcm2niix(dir: string, name: string): Record<string, Ref> {
  const out = join(root, `${name}-nii`);
  mkdirSync(out, { recursive: true });
  execFileSync('dcm2niix', ['-z', 'n', '-b', 'n', '-f', name, '-o', out, dir], { encoding: 'utf8' });
  const files = readdirSync(out).filter((f) => f.endsWith('.nii')).map((f) => join(out, f));
  const meta = JSON.parse(execFileSync(PYTHON, ['-c', DUMP, ...files], { encoding: 'utf8' })) as Record<string, { shape: number[]; affine: number[][] }>;
  const refs: Record<string, Ref> = {};
  for (const f of files) {
    const buf = readFileSync(`${f}.f32`);
    refs[f.slice(out.length + 1)] = { ...meta[f]!, data: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)) };
  }
  return refs;
}

function folderItems(dir: string): InputItem[] {
  return readdirSync(dir)
    .sort()
    .map((f) => ({ name: f, size: statSync(join(dir, f)).size, read: async () => new Uint8Array(readFileSync(join(dir, f))) }));
}

async function ours(dir: string, resample = false): Promise<Ours> {
  const raw = await readDicomItems(folderItems(dir), { limits, resample });
  expect(raw.rejected).toEqual([]);
  expect(raw.volumes).toHaveLength(1);
  const v = toCanonical(raw.volumes[0]!);
  return { v, real: Float32Array.from(realValues(v)), warnings: raw.warnings.map((w) => w.code).sort(), raw };
}

function affineDiff(a: number[][], b: number[][], cols = [0, 1, 2, 3]): number {
  let m = 0;
  for (let r = 0; r < 3; r++) for (const c of cols) m = Math.max(m, Math.abs(a[r]![c]! - b[r]![c]!));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function only(refs: Record<string, Ref>): Ref {
  expect(Object.keys(refs)).toHaveLength(1);
  return Object.values(refs)[0]!;
}

function convertFolder(src: string, name: string, tool: string, args: string[]): string {
  const out = join(root, name);
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(src)) execFileSync(tool, [...args, join(src, f), join(out, f)], { stdio: 'ignore' });
  return out;
}

beforeAll(async () => {
  requireData(join(MRICRON, 'ch2.nii.gz'));
  const all = [...GEOMETRIES, ...IRREGULAR];
  // two at a time: the CI machine has two cores
  for (let i = 0; i < all.length; i += 2) await Promise.all(all.slice(i, i + 2).map(build));
}, 120_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('series vs dcm2niix', () => {
  it.each(GEOMETRIES)('%s: identical real voxels and affine, spacing from positions, no warnings', async (name) => {
    const { dir } = built[name]!;
    const ref = only(dcm2niix(dir, name));
    const { v, real, warnings, raw } = await ours(dir);
    expect(v.shape).toEqual(ref.shape);
    expect(affineDiff(v.affine, ref.affine)).toBeLessThan(1e-3);
    expect(maxAbsDiff(real, ref.data)).toBe(0);
    expect(warnings).toEqual([]);
    // SliceThickness says 4 mm; the positions say 2.5
    expect(raw.volumes[0]!.spacing[2]).toBeCloseTo(2.5, 6);
    expect(raw.series).toEqual([expect.objectContaining({ files: NZ, shape: [NX, NY, NZ], warnings: [] })]);
  });

  it('slope 0.5 / intercept 0.25 (MR) is carried exactly; slope 1 / intercept -1024 (CT) is applied in int16', async () => {
    const mr = (await ours(built.mr!.dir)).raw.volumes[0]!;
    expect(mr.dtype).toBe('int16');
    expect(mr.meta.rescale).toEqual({ slope: 0.5, intercept: 0.25 });
    const ct = (await ours(built.axial!.dir)).raw.volumes[0]!;
    expect(ct.dtype).toBe('int16');
    expect(ct.meta.rescale).toBeUndefined();
  });

  it('per-slice rescale: float32 real values, as dcm2niix writes them', async () => {
    const { dir } = built.rescalevar!;
    const ref = only(dcm2niix(dir, 'rescalevar'));
    const { v, real, warnings } = await ours(dir);
    expect(v.dtype).toBe('float32');
    expect(warnings).toEqual(['rescale_varies']);
    expect(affineDiff(v.affine, ref.affine)).toBeLessThan(1e-3);
    expect(maxAbsDiff(real, ref.data)).toBe(0);
  });

  it('transfer syntaxes: each converted folder equals dcm2niix on the same folder', async () => {
    const { dir } = built.oblique!;
    const cases: [string, string, string[], string][] = [
      ['implicit', 'dcmconv', ['+ti'], '1.2.840.10008.1.2'],
      ['bigendian', 'dcmconv', ['+tb'], '1.2.840.10008.1.2.2'],
      ['rle', 'dcmcrle', [], '1.2.840.10008.1.2.5'],
      ['jpeg-sv1', 'dcmcjpeg', ['+e1'], '1.2.840.10008.1.2.4.70'],
      ['jpeg-p14-sv6', 'dcmcjpeg', ['+el', '+sv', '6'], '1.2.840.10008.1.2.4.57'],
      ['jpeg-ls', 'dcmcjpls', [], '1.2.840.10008.1.2.4.80'],
      ['j2k', 'gdcmconv', ['--j2k'], '1.2.840.10008.1.2.4.90'],
    ];
    const explicit = await ours(dir);
    expect(explicit.raw.volumes[0]!.meta.transferSyntaxUID).toBe('1.2.840.10008.1.2.1');
    for (const [name, tool, args, uid] of cases) {
      const out = convertFolder(dir, `ts-${name}`, tool, args);
      // dcm2niix here is built without JPEG-LS: dcmtk's own decoder turns those files back first
      const oracleDir = name === 'jpeg-ls' ? convertFolder(out, 'ts-jpeg-ls-decoded', 'dcmdjpls', []) : out;
      const ref = only(dcm2niix(oracleDir, `ts-${name}`));
      const { v, real, raw } = await ours(out);
      expect(raw.volumes[0]!.meta.transferSyntaxUID, name).toBe(uid);
      expect(affineDiff(v.affine, ref.affine), name).toBeLessThan(1e-3);
      expect(maxAbsDiff(real, ref.data), name).toBe(0);
    }
  }, 120_000);

  it('missing slice: flagged where it is; acquired voxels as dcm2niix keeps them; resampled like its _Eq', async () => {
    const { dir, positions } = built.missing!;
    const refs = dcm2niix(dir, 'missing');
    const raw = refs['missing.nii']!;
    const eq = refs['missing_Eq_1.nii']!;
    const { v, real, warnings, raw: res } = await ours(dir);
    expect(warnings).toEqual(['missing_slices']);
    expect(res.warnings[0]!.details).toMatchObject({ missing: 1, after: [16] });
    expect(v.shape).toEqual([NX, NY, NZ - 1]);
    expect(maxAbsDiff(real, raw.data)).toBe(0);
    // dcm2niix's uncorrected file spaces slices by the first step; ours by the mean step (first → last)
    expect(affineDiff(v.affine, raw.affine, [0, 1, 3])).toBeLessThan(1e-3);
    expect(v.affine[2]![2]).toBeCloseTo((positions.at(-1)![2]! - positions[0]![2]!) / (NZ - 2), 9);

    const r = await ours(dir, true);
    expect(r.warnings).toEqual(['missing_slices', 'resampled']);
    expect(r.v.shape).toEqual([NX, NY, NZ]);
    // dcm2niix's _Eq keeps the acquired slice count (39), so it stops one step short of the last slice
    expect(eq.shape).toEqual([NX, NY, NZ - 1]);
    expect(affineDiff(r.v.affine, eq.affine)).toBeLessThan(1e-3);
    const n2 = NX * NY;
    const head = r.real.subarray(0, eq.data.length);
    // acquired slices exact; the interpolated one within dcm2niix's rounding to int16 (0.5)
    expect(maxAbsDiff(head.subarray(0, 17 * n2), eq.data.subarray(0, 17 * n2))).toBe(0);
    expect(maxAbsDiff(head.subarray(18 * n2), eq.data.subarray(18 * n2))).toBe(0);
    expect(maxAbsDiff(head.subarray(17 * n2, 18 * n2), eq.data.subarray(17 * n2, 18 * n2))).toBeLessThanOrEqual(0.5);
  });

  it('uneven spacing: flagged; resampled like dcm2niix _Eq (linear between the bracketing slices)', async () => {
    const { dir } = built.uneven!;
    const refs = dcm2niix(dir, 'uneven');
    const eq = refs['uneven_Eq_1.nii']!;
    const { warnings, real } = await ours(dir);
    expect(warnings).toEqual(['uneven_spacing']);
    expect(maxAbsDiff(real, refs['uneven.nii']!.data)).toBe(0);
    const r = await ours(dir, true);
    expect(r.warnings).toEqual(['resampled', 'uneven_spacing']);
    expect(affineDiff(r.v.affine, eq.affine)).toBeLessThan(1e-3);
    const nz = Math.min(r.v.shape[2]!, eq.shape[2]!);
    const n = nz * NX * NY;
    expect(nz).toBeGreaterThanOrEqual(NZ - 1);
    expect(maxAbsDiff(r.real.subarray(0, n), eq.data.subarray(0, n))).toBeLessThanOrEqual(0.5);
  });

  it('gantry tilt: flagged with its angle; raw voxels equal dcm2niix; resampled grid agrees with its _Tilt correction', async () => {
    const { dir, positions } = built.tilt!;
    const refs = dcm2niix(dir, 'tilt');
    const raw = refs['tilt.nii']!;
    const corrected = refs['tilt_Tilt_1.nii']!;
    const res = await readDicomItems(folderItems(dir), { limits });
    expect(res.warnings.map((w) => w.code)).toEqual(['gantry_tilt']);
    expect(res.warnings[0]!.details).toMatchObject({ degrees: expect.closeTo(12, 6), headerDegrees: 12 });
    // every acquired slice origin lies exactly where its ImagePositionPatient says (LPS → RAS)
    const v0 = res.volumes[0]!;
    positions.forEach((p, k) => expect(applyAffine(v0.affine, [0, 0, k])).toEqual([-p[0]!, -p[1]!, p[2]!].map((x) => expect.closeTo(x, 4))));
    const { v, real } = await ours(dir);
    expect(affineDiff(v.affine, raw.affine)).toBeLessThan(1e-3);
    expect(maxAbsDiff(real, raw.data)).toBe(0);

    const r = await ours(dir, true);
    expect(r.warnings).toEqual(['gantry_tilt', 'resampled']);
    // same directions and spacing (no shear left); dcm2niix widens the grid to hold the shifted rows
    expect(affineDiff(r.v.affine, corrected.affine, [0, 1, 2])).toBeLessThan(1e-3);
    // dcm2niix copies its last slice unshifted into the first rows of the widened grid but states that
    // grid's origin a whole number of rows away, so its data sit δ = (rows padded · 2 mm − total shift)
    // off the stated positions (1.3 mm here), measured against its own uncorrected file at the last slice.
    // Ours puts every slice where its IPP says (checked above); dcm2niix's is sampled at w + δ.
    const last = [0, 0, NZ - 1];
    const delta = applyAffine(corrected.affine, last).map((x, a) => x - applyAffine(raw.affine, last)[a]!);
    expect(Math.hypot(...delta)).toBeGreaterThan(0.5);
    expect(Math.hypot(...delta)).toBeLessThan(2);
    const [nx, ny, nz] = r.v.shape as [number, number, number];
    const [mx, my] = corrected.shape as [number, number, number];
    const inv = invert4(corrected.affine);
    const meanDiff = (shift: number[]) => {
      let sum = 0;
      let n = 0;
      for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
        const [a, b, c] = applyAffine(inv, applyAffine(r.v.affine, [i, j, k]).map((x, ax) => x + shift[ax]!));
        const ia = Math.round(a);
        const ic = Math.round(c);
        const b0 = Math.floor(b);
        if (Math.abs(a - ia) > 1e-3 || Math.abs(c - ic) > 1e-3 || b0 < 0 || b0 + 1 >= my || ia < 0 || ia >= mx) continue;
        const at = (bb: number) => corrected.data[ia + mx * (bb + my * ic)]!;
        sum += Math.abs(r.real[i + nx * (j + ny * k)]! - (at(b0) * (1 - (b - b0)) + at(b0 + 1) * (b - b0)));
        n++;
      }
      return { mean: sum / n, n };
    };
    const aligned = meanDiff(delta);
    expect(aligned.n).toBeGreaterThan(nx * ny * nz * 0.9);
    // values span -1024..~+800; measured mean |diff| 7.7 (dcm2niix's own row interpolation), against 38
    // when its stated origin is taken at face value
    expect(aligned.mean).toBeLessThan(10);
    expect(aligned.mean).toBeLessThan(meanDiff([0, 0, 0]).mean / 3);
  });
});

describe('reliability D16/D17', () => {
  it('D16: one folder mixing five series, a duplicate file, a truncated copy and junk', async () => {
    const mixed = join(root, 'd16');
    mkdirSync(mixed);
    const sets = ['axial', 'tilt', 'missing', 'uneven', 'revrows'];
    for (const s of sets) for (const f of readdirSync(built[s]!.dir)) copyFileSync(join(built[s]!.dir, f), join(mixed, `${s}-${f}`));
    copyFileSync(join(built.axial!.dir, '005.dcm'), join(mixed, 'copy-of-axial-005.dcm'));
    writeFileSync(join(mixed, 'truncated.dcm'), readFileSync(join(built.axial!.dir, '006.dcm')).subarray(0, 4000));
    writeFileSync(join(mixed, 'notes.txt'), 'not dicom');
    const res = await readDicomItems(folderItems(mixed), { limits });
    expect(res.rejected.map((r) => [r.name, r.code]).sort()).toEqual([
      ['notes.txt', 'not_dicom'],
      ['truncated.dcm', 'truncated'],
    ]);
    const byDesc = Object.fromEntries(res.volumes.map((v, i) => [v.meta.seriesDescription!, { v, s: res.series[i]! }]));
    expect(Object.keys(byDesc).sort()).toEqual([...sets].sort());
    const expected: Record<string, string[]> = { axial: ['duplicate_slices'], tilt: ['gantry_tilt'], missing: ['missing_slices'], uneven: ['uneven_spacing'], revrows: [] };
    for (const s of sets) {
      expect(byDesc[s]!.s.warnings.map((w) => w.code), s).toEqual(expected[s]);
      // each series assembles exactly as from its own folder (which is compared with dcm2niix above)
      const alone = (await readDicomItems(folderItems(built[s]!.dir), { limits })).volumes[0]!;
      expect(byDesc[s]!.v.shape).toEqual(alone.shape);
      expect(byDesc[s]!.v.affine).toEqual(alone.affine);
      expect(maxAbsDiff(byDesc[s]!.v.data, alone.data), s).toBe(0);
    }
    expect(byDesc.axial!.s.files).toBe(NZ + 1);
  });

  it('D17: SOPInstanceUID "../../x", names with "/" and "..": carried as data, never a path or a name', async () => {
    const { dir } = built.hostile!;
    const snapshot = () => [walk(root), existsSync(resolve(dir, '../../x')), existsSync(resolve(process.cwd(), '../../x'))];
    const before = snapshot();
    const progress: [number, number, string][] = [];
    const items = folderItems(dir);
    const res = await readDicomItems(items, { limits, onProgress: (d, t, w) => progress.push([d, t, w]) });
    expect(snapshot()).toEqual(before);
    const v = res.volumes[0]!;
    expect(v.meta.sopInstanceUIDs![0]).toBe('../../x');
    expect(v.meta.seriesDescription).toBe('../../evil/name');
    expect(v.meta.patient?.PatientName).toBe('../../a/b^c/..');
    // nothing user-visible is named from the file contents: only item names, which the caller chose
    const names = new Set(items.map((i) => i.name));
    expect(res.rejected.every((r) => names.has(r.name))).toBe(true);
    expect(JSON.stringify({ s: res.series.map((s) => ({ ...s, description: undefined })), w: res.warnings, r: res.rejected })).not.toMatch(/evil|\.\.\/\.\.\/x|a\/b/);
    expect(v.meta.source ?? '').not.toMatch(/evil|x/);
    // progress is reported per file while decoding and ends complete
    expect(progress.some(([, , w]) => w === 'decoding')).toBe(true);
    const last = progress.at(-1)!;
    expect(last[0]).toBe(last[1]);
    // and the read path has no file-system access to misuse
    for (const m of ['read_items', 'series', 'group', 'stack', 'resample']) {
      expect(readFileSync(join(import.meta.dirname, '..', '..', '..', 'io', 'dicom', `${m}.ts`), 'utf8'), m).not.toMatch(/from '(node:)?fs(\/promises)?'/);
    }
  });
});

function walk(dir: string, depth = 6): string[] {
  if (depth < 0 || !existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === '.git') continue;
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(p, depth - 1));
  }
  return out.sort();
}
