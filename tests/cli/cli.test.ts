/** The command as users run it: exit codes, one-line errors, JSON shapes, written files that oracles read. */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { pythonJson, runPython } from '../_helpers/python.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'gatedvision.mjs');
const SAMPLE = join(import.meta.dirname, '..', '..', 'models', 'samples', 'colin27_t1_2mm.nii.gz');
const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const CT = `${PYDICOM}/CT_small.dcm`;

async function gv(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { timeout: 60_000, maxBuffer: 1 << 26 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gv-cli-'));
});

describe('gatedvision info', () => {
  it('describes the bundled sample with the affine nibabel reports', async () => {
    const r = await gv('info', SAMPLE, '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    const ref = pythonJson<{ shape: number[]; affine: number[][] }>(
      `import json,sys,nibabel as nib; i=nib.load(sys.argv[1]); print(json.dumps({'shape': list(i.shape), 'affine': i.affine.tolist()}))`,
      [SAMPLE],
    );
    expect(info.format).toBe('nifti');
    expect(info.shape).toEqual(ref.shape);
    for (let r2 = 0; r2 < 4; r2++) for (let c = 0; c < 4; c++) expect(info.affine[r2][c]).toBeCloseTo(ref.affine[r2]![c]!, 5);
    expect(info.spacing.slice(0, 3)).toEqual([2, 2, 2]);
    expect(Array.isArray(info.series)).toBe(true);
    expect(Array.isArray(info.warnings)).toBe(true);
  });

  it('reads a DICOM file and reports its modality', async () => {
    const r = await gv('info', CT, '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.format).toBe('dicom');
    expect(info.modality).toBe('CT');
    expect(info.shape.slice(0, 3)).toEqual([128, 128, 1]);
  });

  it('a missing file: exit 5 and one line naming the code', async () => {
    const r = await gv('info', join(tmp, 'nope.dcm'));
    expect(r.code).toBe(5);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error not_found: /);
  });

  it('random bytes: exit 3, typed code, no stack trace; --json gives {error:{code,message}}', async () => {
    const f = join(tmp, 'noise.bin');
    await writeFile(f, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)));
    const r = await gv('info', f);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^error unsupported_format: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const j = await gv('info', f, '--json');
    expect(j.code).toBe(3);
    expect(JSON.parse(j.stdout)).toEqual({ error: { code: 'unsupported_format', message: expect.any(String) } });
  });

  it('usage errors exit 2', async () => {
    expect((await gv('info')).code).toBe(2);
    expect((await gv('frobnicate')).code).toBe(2);
  });

  it('train: an unknown --sample, or --sample outside restore, is a usage error naming the choices', async () => {
    const bad = await gv('train', '--task', 'restore', '--data', tmp, '-o', join(tmp, 'never'), '--sample', 'pixels');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--sample must be image or area');
    const seg = await gv('train', '--task', 'segment', '--data', tmp, '-o', join(tmp, 'never'), '--sample', 'area');
    expect(seg.code).toBe(2);
    expect(seg.stderr).toContain('--sample applies to --task restore');
  });

  it('train: --ema outside (0, 1) or not a number is a usage error', async () => {
    for (const ema of ['1', '0', 'abc', '1.5', '']) {
      const r = await gv('train', '--task', 'restore', '--data', tmp, '-o', join(tmp, 'never'), '--ema', ema);
      expect(r.code, `--ema '${ema}'`).toBe(2);
      expect(r.stderr).toContain('--ema must be a number between 0 and 1 (exclusive)');
    }
  });

  it('train --help lists --ema', async () => {
    const r = await gv('train', '--help');
    expect(`${r.stdout}${r.stderr}`).toMatch(/--ema.*moving average of the weights/);
  });
});

describe('gatedvision convert', () => {
  it('NIfTI → NIfTI keeps data and affine (checked by nibabel)', async () => {
    const out = join(tmp, 'copy.nii');
    const r = await gv('convert', SAMPLE, out);
    expect(r.code).toBe(0);
    const same = pythonJson<{ data: boolean; affine: boolean }>(
      `import json,sys,numpy as np,nibabel as nib
a=nib.load(sys.argv[1]); b=nib.load(sys.argv[2])
print(json.dumps({'data': bool(np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))), 'affine': bool(np.allclose(a.affine, b.affine, atol=1e-5))}))`,
      [SAMPLE, out],
    );
    expect(same).toEqual({ data: true, affine: true });
  });

  it('DICOM slice → PNG that PIL reads with the right size', async () => {
    const out = join(tmp, 'ct.png');
    const r = await gv('convert', CT, out);
    expect(r.code).toBe(0);
    const png = pythonJson<{ size: number[]; distinct: number }>(
      `import json,sys,numpy as np; from PIL import Image; im=Image.open(sys.argv[1]); print(json.dumps({'size': list(im.size), 'distinct': int(len(np.unique(np.asarray(im))))}))`,
      [out],
    );
    expect(png.size).toEqual([128, 128]);
    // Hounsfield values go through the series' display window, not clipped to black
    expect(png.distinct).toBeGreaterThan(50);
  });

  it('3D → PNG is a usage error and writes nothing', async () => {
    const out = join(tmp, 'vol.png');
    const r = await gv('convert', SAMPLE, out);
    expect(r.code).toBe(2);
    expect((await readdir(tmp)).includes('vol.png')).toBe(false);
  });

  it('a folder of many series → one NIfTI per series, named by position only (never by identifiers)', async () => {
    const out = join(tmp, 'many');
    await mkdir(out);
    const r = await gv('convert', join(PYDICOM, 'dicomdirtests'), out, '--json');
    expect(r.code).toBe(0);
    const { outputs } = JSON.parse(r.stdout) as { outputs: string[] };
    const names = (await readdir(out)).sort();
    expect(names.length).toBe(outputs.length);
    expect(names.length).toBeGreaterThan(10);
    for (const n of names) expect(n).toMatch(/^series-\d{3}\.nii\.gz$/);
    const shapes = pythonJson<number[][]>(`import json,sys,nibabel as nib; print(json.dumps([list(nib.load(f).shape) for f in sys.argv[1:]]))`, outputs);
    expect(shapes.some((s) => s[2] === 5)).toBe(true); // the 5-slice CT series
  });

  it('a zip of a series reads like the folder', async () => {
    const zip = join(tmp, 'ct.zip');
    runPython(`import sys,zipfile,os; z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED)
d=sys.argv[2]
[z.write(os.path.join(d,f),'series/'+f) for f in sorted(os.listdir(d))]; z.close()`, [zip, join(PYDICOM, 'dicomdirtests', '98892001', 'CT5N')]);
    const a = JSON.parse((await gv('info', zip, '--json')).stdout);
    const b = JSON.parse((await gv('info', join(PYDICOM, 'dicomdirtests', '98892001', 'CT5N'), '--json')).stdout);
    expect(a.shape).toEqual(b.shape);
    expect(a.affine).toEqual(b.affine);
  });
});
