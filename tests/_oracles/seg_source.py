"""Builds a tiny oblique CT series with pydicom for the DICOM SEG writer tests, then reads it back with
pydicom and prints its identity and geometry as JSON (the writer's SegSource, from pydicom alone).
Usage: seg_source.py OUTDIR
13 columns x 11 rows x 5 slices (143 bits per frame, so frames do not end on byte boundaries), unequal
row/column spacing, rotated orientation, slices stepping against the orientation normal (a left-handed
grid) from an origin off every axis. The affine is RAS, voxel (column, row, slice) -> mm."""
import json, math, os, sys
import numpy as np, pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
COLS, ROWS, SLICES = 13, 11, 5

def rot(axis, deg):
    a = np.asarray(axis, float); a /= np.linalg.norm(a); t = math.radians(deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K

R = rot([0.3, -0.5, 0.81], 23)
row, col = R[:, 0], R[:, 1]
normal = np.cross(row, col)
pixel_spacing = [0.75, 0.9]  # [between rows, between columns]
origin = np.array([-31.7, 12.4, 88.9])
study, series, frame = generate_uid(), generate_uid(), generate_uid()
patient = {'PatientName': 'Müller^Jörg', 'PatientID': 'GV-0042', 'PatientBirthDate': '19600229', 'PatientSex': 'M',
           'StudyDate': '20240131', 'StudyTime': '101500', 'StudyID': 'S17', 'AccessionNumber': 'ACC123',
           'ReferringPhysicianName': 'Ref^Doc'}
rng = np.random.default_rng(7)
for k in range(SLICES):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SpecificCharacterSet = 'ISO_IR 192'
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    for key, value in patient.items():
        setattr(ds, key, value)
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = 'CT', 4, k + 1
    ds.ImageOrientationPatient = [float(x) for x in list(row) + list(col)]
    ds.ImagePositionPatient = [float(x) for x in origin - k * 2.5 * normal]
    ds.PixelSpacing, ds.SliceThickness = pixel_spacing, 2.5
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = rng.integers(-100, 100, (ROWS, COLS)).astype(np.int16).tobytes()
    ds.save_as(os.path.join(out, f'{k:03d}.dcm'), write_like_original=False)

# Read back: the series as pydicom sees it, ordered by position along the normal of the orientation.
files = [pydicom.dcmread(os.path.join(out, f)) for f in sorted(os.listdir(out))]
iop = np.array(files[0].ImageOrientationPatient, float)
n = np.cross(iop[:3], iop[3:])
files.sort(key=lambda d: -float(np.dot(n, np.array(d.ImagePositionPatient, float))))
ipp = [np.array(d.ImagePositionPatient, float) for d in files]
ps = [float(x) for x in files[0].PixelSpacing]
lps = np.eye(4)
lps[:3, 0] = iop[:3] * ps[1]
lps[:3, 1] = iop[3:] * ps[0]
lps[:3, 2] = ipp[1] - ipp[0]
lps[:3, 3] = ipp[0]
ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
f0 = files[0]
print(json.dumps({
    'studyInstanceUID': str(f0.StudyInstanceUID), 'seriesInstanceUID': str(f0.SeriesInstanceUID),
    'frameOfReferenceUID': str(f0.FrameOfReferenceUID), 'sopClassUID': str(f0.SOPClassUID),
    'sopInstanceUIDs': [str(d.SOPInstanceUID) for d in files],
    'shape': [int(f0.Columns), int(f0.Rows), len(files)], 'affine': ras.tolist(),
    'ipp': [p.tolist() for p in ipp],
    'patient': {key: str(f0.data_element(key).value) for key in patient},
}, ensure_ascii=False))
