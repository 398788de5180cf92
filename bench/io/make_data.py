"""Builds the io benchmark inputs from real data (Colin27 0.5 mm, mricron-data):
a 300-slice 512x512 CT-like int16 series (explicit VR little endian), its JPEG-LS twin (dcmcjpls),
and a .nii.gz of the same volume. Usage: /usr/bin/python3 bench/io/make_data.py OUTDIR"""
import os, subprocess, sys
import numpy as np, nibabel as nib, pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out = sys.argv[1]
src = nib.as_closest_canonical(nib.load('/usr/share/mricron/templates/ch2better.nii.gz'))
vol = np.asarray(src.dataobj, dtype=np.float32)  # 301 x 370 x 316
n = 300
cube = np.zeros((512, 512, n), np.int16)
sx, sy = vol.shape[0], vol.shape[1]
ox, oy = (512 - sx) // 2, (512 - sy) // 2
cube[ox:ox + sx, oy:oy + sy, :] = np.round(vol[:, :, 8:8 + n] * 12 - 1000).astype(np.int16)

study, series, frame = generate_uid(), generate_uid(), generate_uid()
for name in ('plain', 'jpegls'):
    os.makedirs(os.path.join(out, name), exist_ok=True)
for k in range(n):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality, ds.PatientName, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = 'CT', 'Bench^Volume', 'BENCH', 1, k + 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-128.0, -128.0, -75.0 + 0.5 * k]
    ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 0.5
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = np.ascontiguousarray(cube[:, :, k].T).tobytes()
    path = os.path.join(out, 'plain', f'{k:04d}.dcm')
    ds.save_as(path, write_like_original=False)
    subprocess.run(['dcmcjpls', path, os.path.join(out, 'jpegls', f'{k:04d}.dcm')], check=True)
aff = np.diag([-0.5, -0.5, 0.5, 1.0]); aff[:3, 3] = [128.0, 128.0, -75.0]
nib.save(nib.Nifti1Image(cube, aff), os.path.join(out, 'volume.nii.gz'))
print(out)
