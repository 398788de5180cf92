"""Writes small restoration inputs from real data. argv: out_dir.

noisy/cam.png (8-bit crop of skimage's camera + Gaussian noise, seed 0), noisy/cam16.png (the same x 257,
16-bit), clean/cam.png (the clean crop), noisy/brain.nii.gz (int16 crop of mricron's ch2, 3 slices, oblique
affine), noisy/notes.txt (not an image). Prints {"cam16_max": ...}.
"""
import json, os, sys
import numpy as np
import nibabel as nib
from PIL import Image
from skimage import io as skio

out = sys.argv[1]
for d in ('noisy', 'clean'):
    os.makedirs(os.path.join(out, d), exist_ok=True)
cam = skio.imread('/usr/lib/python3/dist-packages/skimage/data/camera.png')[100:164, 200:296]
rng = np.random.default_rng(0)
noisy = np.clip(np.round(cam + rng.normal(0, 25, cam.shape)), 0, 255).astype(np.uint8)
Image.fromarray(cam).save(os.path.join(out, 'clean', 'cam.png'))
Image.fromarray(noisy).save(os.path.join(out, 'noisy', 'cam.png'))
n16 = noisy.astype(np.uint16) * 257
Image.fromarray(n16).save(os.path.join(out, 'noisy', 'cam16.png'))
ch2 = nib.load('/usr/share/mricron/templates/ch2.nii.gz')
vol = np.asarray(ch2.dataobj)[60:108, 80:120, 70:73].astype(np.int16) * 10 - 300
aff = ch2.affine.copy()
aff[:3, :3] = aff[:3, :3] @ np.array([[0.96, -0.28, 0], [0.28, 0.96, 0], [0, 0, 1.0]])
nib.save(nib.Nifti1Image(vol, aff), os.path.join(out, 'noisy', 'brain.nii.gz'))
with open(os.path.join(out, 'noisy', 'notes.txt'), 'w') as f:
    f.write('not an image\n')
print(json.dumps({'cam16_max': int(n16.max()), 'affine': aff.tolist()}))
