"""Builds a small DICOM series from real data (Colin27 T1, mricron-data) for reader tests.
Usage: make_series.py OUTDIR VARIANT   VARIANT: axial | oblique | reversed | missing | tilt | uneven
Slices are 2 mm (2x2x2 block average of ch2.nii.gz), 90x108 pixels, 20 slices, CT-like int16 with
RescaleIntercept -1024. Prints a JSON line with the LPS position of every written slice."""
import json, math, os, sys
import numpy as np, nibabel as nib, pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out, variant = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
img = nib.load('/usr/share/mricron/templates/ch2.nii.gz')
d = np.asarray(img.dataobj).astype(np.float32)
d = d[:180, :216, :180].reshape(90, 2, 108, 2, 90, 2).mean(axis=(1, 3, 5))
slab = d[:, :, 35:55]  # 90 x 108 x 20

def rot(axis, deg):
    a = np.asarray(axis, float); a /= np.linalg.norm(a); t = math.radians(deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K

R = rot([0.2, 0.3, 0.93], 17) if variant == 'oblique' else np.eye(3)
row, col = R[:, 0], R[:, 1]
normal = np.cross(row, col)
ps = [2.0, 2.0]
step = 2.5
origin = np.array([-90.0, -110.0, -20.0])
study, series, frame = generate_uid(), generate_uid(), generate_uid()
ks = list(range(slab.shape[2]))
if variant == 'missing':
    ks.remove(7)
positions = []
for n, k in enumerate(ks):
    z = k * step + (0.6 if variant == 'uneven' and k >= 10 else 0.0)
    pos = origin + z * normal
    if variant == 'tilt':
        pos = pos + z * math.tan(math.radians(12)) * col
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality, ds.PatientName, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = 'CT', 'Test^Series', 'SERIES', 3, n + 1
    ds.ImageOrientationPatient = [float(x) for x in list(row) + list(col)]
    ds.ImagePositionPatient = [float(x) for x in pos]
    ds.PixelSpacing, ds.SliceThickness = ps, step
    if variant == 'tilt':
        ds.GantryDetectorTilt = 12.0
    ds.Rows, ds.Columns = slab.shape[1], slab.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = np.ascontiguousarray(np.round(slab[:, :, k] * 8).astype(np.int16).T).tobytes()
    name = f'{(len(ks) - 1 - n) if variant == "reversed" else n:03d}.dcm'
    ds.save_as(os.path.join(out, name), write_like_original=False)
    positions.append([float(x) for x in pos])
print(json.dumps({'positions': positions, 'row': list(map(float, row)), 'col': list(map(float, col))}))
