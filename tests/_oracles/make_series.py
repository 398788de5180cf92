"""Builds a small DICOM series from real data (Colin27 T1, mricron-data) for reader tests.
Usage: make_series.py OUTDIR VARIANT
VARIANT: axial | oblique | reversed | flipped | revrows | mr | missing | tilt | uneven | rescalevar | hostile
Slices are 2 mm (2x2x2 block average of ch2.nii.gz), 90x108 pixels, 40 slices 2.5 mm apart, CT-like int16
with RescaleIntercept -1024 (mr: oblique, slope 0.5 / intercept 0.25; rescalevar: slope 1 or 2 per slice).
  reversed  file names in the opposite order of the slices
  flipped   slices advance against the IOP normal (positions decrease along row x col)
  revrows   the column direction points the other way (rows stored bottom-up, pixel rows flipped to match)
  hostile   SOPInstanceUID '../../x' on one file, PatientName and SeriesDescription with '/' and '..'
Prints a JSON line with the LPS position of every written slice (file order = slice order)."""
import json, math, os, sys
import numpy as np, nibabel as nib
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out, variant = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
img = nib.load('/usr/share/mricron/templates/ch2.nii.gz')
d = np.asarray(img.dataobj).astype(np.float32)
d = d[:180, :216, :180].reshape(90, 2, 108, 2, 90, 2).mean(axis=(1, 3, 5))
slab = d[:, :, 25:65]  # 90 x 108 x 40, indexed [column, row, slice]

def rot(axis, deg):
    a = np.asarray(axis, float); a /= np.linalg.norm(a); t = math.radians(deg)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K

R = rot([0.2, 0.3, 0.93], 17) if variant in ('oblique', 'mr') else np.eye(3)
row, col = R[:, 0].copy(), R[:, 1].copy()
normal = np.cross(row, col)
ps = [2.0, 2.0]
step = 2.5
origin = np.array([-90.0, -110.0, -20.0])
nrows, ncols = slab.shape[1], slab.shape[0]
if variant == 'revrows':
    origin = origin + (nrows - 1) * ps[0] * col  # the first stored row is the last anatomical one
    col = -col
study, series, frame = generate_uid(), generate_uid(), generate_uid()
ks = list(range(slab.shape[2]))
if variant == 'missing':
    ks.remove(17)
positions = []
for n, k in enumerate(ks):
    z = k * step + (0.6 if variant == 'uneven' and k >= 20 else 0.0)
    pos = origin + z * (-normal if variant == 'flipped' else normal)
    if variant == 'tilt':
        pos = pos + z * math.tan(math.radians(12)) * col
    pixels = slab[:, :, k].T  # rows x columns
    if variant == 'revrows':
        pixels = pixels[::-1, :]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.4' if variant == 'mr' else '1.2.840.10008.5.1.4.1.1.2'
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality = 'MR' if variant == 'mr' else 'CT'
    ds.PatientName, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = 'Test^Series', 'SERIES', 3, n + 1
    ds.SeriesDescription = variant
    if variant == 'hostile':
        ds.PatientName, ds.SeriesDescription = '../../a/b^c/..', '../../evil/name'
        if n == 0:
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID = '../../x'
    ds.ImageOrientationPatient = [float(x) for x in list(row) + list(col)]
    ds.ImagePositionPatient = [float(x) for x in pos]
    ds.PixelSpacing, ds.SliceThickness = ps, 4.0  # thickness deliberately not the 2.5 mm spacing
    if variant == 'tilt':
        ds.GantryDetectorTilt = 12.0
    ds.Rows, ds.Columns = nrows, ncols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    stored = np.round(pixels * 8)
    if variant == 'mr':
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, 0.25
    elif variant == 'rescalevar':
        slope = 2 if n % 2 else 1
        ds.RescaleSlope, ds.RescaleIntercept = slope, -1024
        stored = np.round(stored / slope)
    else:
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = np.ascontiguousarray(stored.astype(np.int16)).tobytes()
    name = f'{(len(ks) - 1 - n) if variant == "reversed" else n:03d}.dcm'
    ds.save_as(os.path.join(out, name), write_like_original=False)
    positions.append([float(x) for x in pos])
print(json.dumps({'positions': positions, 'row': list(map(float, row)), 'col': list(map(float, col))}))
