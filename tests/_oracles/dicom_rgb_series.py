"""Colour (RGB) DICOM series with repeated slice positions, made with pydicom from real data (Colin27 T1,
mricron-data), for tests/io/dicom/rgb_series.test.ts.

Usage: dicom_rgb_series.py OUTDIR VARIANT. Eight axial slices 3 mm apart, 45x54 pixels, 8-bit RGB
(R = the T1 slice, G = the same slice mirrored left-right, B = a per-slice constant), explicit VR little endian.
VARIANT:
  dup       plus pixel-identical copies of slices 2 and 5 under new SOPInstanceUIDs (a re-sent file)
  acq2      a second complete acquisition (AcquisitionNumber 2) at the same positions, different pixels
  conflict  one extra slice at the position of slice 3 with different pixels and nothing to tell it apart
Writes OUTDIR/dicom/*.dcm and OUTDIR/expected_A.u8 per acquisition A: the RGB voxels as [sample][slice][row][column]
(the planar order of a volume whose x is the column, y the row, z the slice along the normal), and prints
{"acquisitions": [...], "files": n, "positions": [[x, y, z], ...]} as JSON.
"""
import json
import os
import sys

import nibabel as nib
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out, variant = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, 'dicom'), exist_ok=True)
d = np.asarray(nib.load('/usr/share/mricron/templates/ch2.nii.gz').dataobj).astype(np.float32)
d = d[:180, :216, :].reshape(45, 4, 54, 4, -1).mean(axis=(1, 3))
slab = d[:, :, 80:120:5]  # 45 x 54 x 8, indexed [column, row, slice]
slab = np.clip(slab / slab.max() * 255, 0, 255).astype(np.uint8)
study, series, frame = generate_uid(), generate_uid(), generate_uid()
origin = np.array([-90.0, -110.0, -10.0])
step = 3.0


def rgb(k, acquisition):
    grey = slab[:, :, k].T  # rows x columns
    if acquisition == 2:
        grey = 255 - grey
    blue = np.full_like(grey, 20 * k + 7 * acquisition)
    return np.stack([grey, grey[:, ::-1], blue], axis=-1)  # rows x columns x 3


def write(name, k, acquisition, pixels, instance):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'  # secondary capture
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality = 'OT'
    ds.PatientName, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = 'Test^Colour', 'COLOUR', 7, instance
    ds.AcquisitionNumber = acquisition
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [float(v) for v in origin + [0, 0, k * step]]
    ds.PixelSpacing = [4.0, 4.0]
    ds.SliceThickness = step
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, 'RGB', 0
    ds.Rows, ds.Columns = pixels.shape[0], pixels.shape[1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(os.path.join(out, 'dicom', name))


files = 0
acquisitions = [1, 2] if variant == 'acq2' else [1]
for a in acquisitions:
    for k in range(slab.shape[2]):
        files += 1
        write('a%d_%02d.dcm' % (a, k), k, a, rgb(k, a), files)
    vol = np.stack([rgb(k, a) for k in range(slab.shape[2])])  # slice, row, column, sample
    np.ascontiguousarray(vol.transpose(3, 0, 1, 2)).tofile(os.path.join(out, 'expected_%d.u8' % a))
if variant == 'dup':
    for k in (2, 5):
        files += 1
        write('copy_%02d.dcm' % k, k, 1, rgb(k, 1), files)
if variant == 'conflict':
    files += 1
    write('conflict_03.dcm', 3, 1, rgb(3, 2), files)
print(json.dumps({'acquisitions': acquisitions, 'files': files, 'positions': [list(origin + [0, 0, k * step]) for k in range(slab.shape[2])]}))
