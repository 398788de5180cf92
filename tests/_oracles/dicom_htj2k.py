"""Encapsulated HTJ2K DICOM made from pydicom's MR_small.dcm with OpenJPH's ojph_compress (Debian openjph-tools),
for tests/io/dicom/htj2k.test.ts. The oracle is the source: every case is reversible (lossless), so a correct
reader returns exactly the source pixels.

Usage: dicom_htj2k.py OUTDIR. For case NAME writes NAME.dcm (HTJ2K), NAME.native.dcm (the same dataset
uncompressed, for the geometry comparison) and NAME.orig.f64 (source pixels, frame after frame).
Cases:
  single      one frame (signed 16-bit, 64x64), 1.2.840.10008.1.2.4.201, one fragment, basic offset table
  rpcl        the same frame as 1.2.840.10008.1.2.4.202 (RPCL progression, as that syntax requires)
  frames4     four unsigned 16-bit frames (values up to 64350, flipped copies), one fragment per frame, offset table
  fragments3  the same four frames, each codestream split over three fragments, offset table
The signed frame holds only non-negative values: OpenJPH 0.9.0 (bookworm) codes negative samples in a way that
neither OpenJPEG 2.5 nor later OpenJPH decoders read back (aous72/OpenJPH issue #102), so a negative value would
test that encoder, not our reader.
Prints {name: {ts, frames, fragments}} as JSON.
"""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import UID, UID_dictionary

warnings.simplefilter('ignore')
# pydicom 2.3 (Debian bookworm) predates the HTJ2K syntaxes and refuses to write a file with an unknown one;
# these are their entries from the DICOM standard (PS3.6 Table A-1), as later pydicom versions list them.
for uid, name in [('1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 Image Compression (Lossless Only)'),
                  ('1.2.840.10008.1.2.4.202', 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)'),
                  ('1.2.840.10008.1.2.4.203', 'High-Throughput JPEG 2000 Image Compression')]:
    UID_dictionary.setdefault(uid, (name, 'Transfer Syntax', '', '', ''))
out = sys.argv[1]
SRC = '/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm'


def htj2k(frame, prog_order):
    """Lossless HTJ2K codestream of one 16-bit frame (signed when its dtype is)."""
    raw = os.path.join(out, 'frame.raw')
    j2c = os.path.join(out, 'frame.j2c')
    signed = frame.dtype.kind == 'i'
    np.ascontiguousarray(frame).tofile(raw)
    rows, cols = frame.shape
    subprocess.run(['ojph_compress', '-i', raw, '-o', j2c, '-reversible', 'true', '-prog_order', prog_order,
                    '-dims', '{%d,%d}' % (cols, rows), '-num_comps', '1', '-signed', 'true' if signed else 'false', '-bit_depth', '16',
                    '-downsamp', '{1,1}'], check=True, capture_output=True)
    with open(j2c, 'rb') as f:
        data = f.read()
    os.remove(raw)
    os.remove(j2c)
    return data


def write(name, frames, ts, prog_order, fragments_per_frame):
    ds = pydicom.dcmread(SRC)
    frames = np.ascontiguousarray(frames, '<i2' if frames.dtype.kind == 'i' else '<u2')
    ds.PixelRepresentation = 1 if frames.dtype.kind == 'i' else 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = frames.tobytes()
    ds.save_as(os.path.join(out, name + '.native.dcm'))
    codestreams = [htj2k(f, prog_order) for f in frames]
    # pydicom splits each codestream into equal parts; every part must stay even-length and non-empty
    ds.PixelData = encapsulate(codestreams, fragments_per_frame=fragments_per_frame, has_bot=True)
    ds['PixelData'].is_undefined_length = True
    ds['PixelData'].VR = 'OB'
    ds.file_meta.TransferSyntaxUID = UID(ts)
    ds.is_implicit_VR = False
    ds.is_little_endian = True
    ds.save_as(os.path.join(out, name + '.dcm'))
    frames.astype('<f8').tofile(os.path.join(out, name + '.orig.f64'))
    check = pydicom.dcmread(os.path.join(out, name + '.dcm'))
    return {'ts': str(check.file_meta.TransferSyntaxUID), 'frames': len(frames), 'fragments': len(frames) * fragments_per_frame}


mr = pydicom.dcmread(SRC).pixel_array.astype(np.int16)
u = mr.astype(np.uint16)
four = np.stack([u, u[::-1], u * 30, u[:, ::-1] + 40000])
res = {
    'single': write('single', mr[None], '1.2.840.10008.1.2.4.201', 'LRCP', 1),
    'rpcl': write('rpcl', mr[None], '1.2.840.10008.1.2.4.202', 'RPCL', 1),
    'frames4': write('frames4', four, '1.2.840.10008.1.2.4.201', 'LRCP', 1),
    'fragments3': write('fragments3', four, '1.2.840.10008.1.2.4.201', 'LRCP', 3),
}
print(json.dumps(res))
