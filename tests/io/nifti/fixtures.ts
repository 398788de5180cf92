/** Shared NIfTI test material: a small real file to mutate, outcome helpers, and the nibabel dump script. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { GatedError } from '../../../core/errors.ts';
import { resolveLimits, type Limits } from '../../../core/limits.ts';
import { readNifti } from '../../../io/nifti/read.ts';
import type { Volume } from '../../../io/volume.ts';
import { NIBABEL_DATA, requireData } from '../../_helpers/testdata.ts';

/** nibabel's standard.nii.gz inflated: NIfTI-1 LE, 4x5x7 uint8, vox_offset 352, sform_code 2, 492 bytes. */
export function standardNii(): Uint8Array {
  return new Uint8Array(gunzipSync(readFileSync(requireData(`${NIBABEL_DATA}/standard.nii.gz`))));
}

/** A copy of `src` changed by `fn` (DataView is little-endian by the callers' choice). */
export function edit(src: Uint8Array, fn: (dv: DataView, b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(src);
  fn(new DataView(b.buffer), b);
  return b;
}

/** `src` with `n` bytes inserted at `at` (to make room for extensions before the voxel data). */
export function insert(src: Uint8Array, at: number, n: number): Uint8Array {
  const b = new Uint8Array(src.length + n);
  b.set(src.subarray(0, at));
  b.set(src.subarray(at), at + n);
  return b;
}

export type Outcome = { ok: true; volume: Volume; ms: number } | { ok: false; code: string; message: string; ms: number };

/** Reads and classifies: a volume, or a GatedError's code. Anything else thrown fails the test. */
export function attempt(bytes: Uint8Array, limits: Partial<Limits> = {}): Outcome {
  const t0 = performance.now();
  try {
    const volume = readNifti(bytes, { limits: resolveLimits(limits) }, 'case');
    return { ok: true, volume, ms: performance.now() - t0 };
  } catch (e) {
    if (!(e instanceof GatedError)) throw e;
    return { ok: false, code: e.code, message: e.message, ms: performance.now() - t0 };
  }
}

export function codeOf(bytes: Uint8Array, limits: Partial<Limits> = {}): string {
  const o = attempt(bytes, limits);
  return o.ok ? 'ok' : o.code;
}

export function sha256(v: Volume): string {
  return createHash('sha256').update(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength)).digest('hex');
}

/**
 * nibabel's view of each file named in argv (one JSON object keyed by path): stored values (unscaled) as
 * little-endian bytes in x-fastest order, RGB24 as planar components after the spatial axes, the affine
 * from get_best_affine, the slope/intercept it applies, or the error nibabel raises.
 */
export const NIBABEL_DUMP = `
import json, sys, hashlib, warnings, numpy as np, nibabel as nib
warnings.simplefilter('ignore')
out = {}
for f in sys.argv[1:]:
    try:
        if f.endswith('.hdr'):
            img = nib.load(f)  # a header/image pair
        else:
            with nib.openers.ImageOpener(f) as fo:
                head = fo.read(4)
            v2 = 540 in (int.from_bytes(head, 'little'), int.from_bytes(head, 'big'))
            # NIfTI-2 files (CIFTI-2 included) are read as plain NIfTI-2 images
            img = (nib.Nifti2Image if v2 else nib.Nifti1Image).load(f)
        raw = np.asanyarray(img.dataobj.get_unscaled())
        if raw.dtype.names:
            raw = np.stack([raw[n] for n in raw.dtype.names], axis=min(3, raw.ndim))
        b = np.asarray(raw).astype(raw.dtype.newbyteorder('<')).tobytes(order='F')
        hdr = img.header
        out[f] = {'sha': hashlib.sha256(b).hexdigest(), 'nbytes': len(b), 'shape': [int(x) for x in img.shape],
                  'affine': img.affine.tolist(), 'slope': float(img.dataobj.slope), 'inter': float(img.dataobj.inter),
                  'dtype': str(img.get_data_dtype()), 'zooms': [float(z) for z in hdr.get_zooms()],
                  'axcodes': ''.join(nib.aff2axcodes(img.affine)), 'version': 2 if isinstance(img, nib.Nifti2Image) else 1,
                  'endian': hdr.endianness, 'offset': int(img.dataobj.offset), 'extensions': len(hdr.extensions)}
    except Exception as e:
        out[f] = {'error': type(e).__name__ + ': ' + str(e)[:160]}
print(json.dumps(out))
`;

export type NibabelRef =
  | {
      error?: undefined;
      sha: string;
      nbytes: number;
      shape: number[];
      affine: number[][];
      slope: number;
      inter: number;
      dtype: string;
      zooms: number[];
      axcodes: string;
      version: 1 | 2;
      endian: string;
      offset: number;
      extensions: number;
    }
  | { error: string };
