"""Encapsulated DICOM made by DCMTK, and DCMTK's own decode of each as the oracle (tests/io/dicom/codecs.test.ts).

Usage: dicom_codecs.py OUTDIR. Builds a 4-frame unsigned 12-bit MR from nibabel's Siemens slices 0.dcm and 1.dcm
(pydicom), compresses it and pydicom's signed CT with dcmcjpeg/dcmcjpls, decompresses each with
dcmdjpeg/dcmdjpls, and writes for case NAME: NAME.dcm (compressed), NAME.orig.f64 (source pixels),
NAME.dcmtk.f64 (DCMTK decode, read by pydicom). Prints {name: {ts, frames, error?}} as JSON.
"""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pydicom

warnings.simplefilter('ignore')
out = sys.argv[1]
P = '/usr/lib/python3/dist-packages/pydicom/data/test_files'
N = '/usr/lib/python3/dist-packages/nibabel/nicom/tests/data'

mf = pydicom.dcmread(os.path.join(N, '0.dcm'))
other = pydicom.dcmread(os.path.join(N, '1.dcm')).pixel_array
frames = np.stack([mf.pixel_array, other, mf.pixel_array[::-1], other[:, ::-1]])
mf.NumberOfFrames = 4
mf.PixelData = np.ascontiguousarray(frames).astype('<u2').tobytes()
mf4 = os.path.join(out, 'mf4.dcm')
mf.save_as(mf4)

CT = os.path.join(P, 'CT_small.dcm')
CASES = {
    'ct_sv1': (CT, ['dcmcjpeg', '+e1'], 'dcmdjpeg'),
    'ct_p14_sv6': (CT, ['dcmcjpeg', '+el', '+sv', '6'], 'dcmdjpeg'),
    'mf_sv1': (mf4, ['dcmcjpeg', '+e1'], 'dcmdjpeg'),
    'mf_p14_sv4': (mf4, ['dcmcjpeg', '+el', '+sv', '4'], 'dcmdjpeg'),
    'mf_jls': (mf4, ['dcmcjpls', '+el'], 'dcmdjpls'),
    'mf_jls_near3': (mf4, ['dcmcjpls', '+en', '+md', '3'], 'dcmdjpls'),
    'mf_extended12': (mf4, ['dcmcjpeg', '+ee'], 'dcmdjpeg'),
    'mf_rle': (mf4, ['dcmcrle'], 'dcmdrle'),
}
res = {}
for name, (src, enc, dec) in CASES.items():
    dst = os.path.join(out, name + '.dcm')
    native = os.path.join(out, name + '.native.dcm')
    try:
        subprocess.run(enc + [src, dst], check=True, capture_output=True)
        subprocess.run([dec, dst, native], check=True, capture_output=True)
        orig = pydicom.dcmread(src).pixel_array
        dcmtk = pydicom.dcmread(native).pixel_array
        np.ascontiguousarray(orig, '<f8').tofile(os.path.join(out, name + '.orig.f64'))
        np.ascontiguousarray(dcmtk, '<f8').tofile(os.path.join(out, name + '.dcmtk.f64'))
        ds = pydicom.dcmread(dst)
        res[name] = {'ts': str(ds.file_meta.TransferSyntaxUID), 'frames': int(ds.get('NumberOfFrames', 1))}
    except subprocess.CalledProcessError as e:
        res[name] = {'error': (e.stderr or b'').decode()[:200]}
print(json.dumps(res))
