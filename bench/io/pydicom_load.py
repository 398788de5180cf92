"""Baseline: load a DICOM series folder into one numpy volume with pydicom (+gdcm for compressed pixels):
read every file, sort along the slice normal, stack, apply the modality LUT. Prints shape and checksum."""
import os, sys
import numpy as np, pydicom

folder = sys.argv[1]
dss = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
iop = np.array(dss[0].ImageOrientationPatient, float)
normal = np.cross(iop[:3], iop[3:])
dss.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
vol = np.stack([d.pixel_array for d in dss], axis=-1)
slope, inter = float(dss[0].get('RescaleSlope', 1)), float(dss[0].get('RescaleIntercept', 0))
if slope != 1 or inter != 0:
    vol = vol * slope + inter
print(vol.shape, int(vol.astype(np.int64).sum()))
