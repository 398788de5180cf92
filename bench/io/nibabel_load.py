"""Baseline: load a .nii.gz into numpy with nibabel. Prints shape and checksum."""
import sys
import numpy as np, nibabel as nib

img = nib.load(sys.argv[1])
vol = np.asarray(img.dataobj)
print(vol.shape, int(vol.astype(np.int64).sum()), img.affine[0, 0])
