"""Writes prediction/reference pairs from real data and prints the metrics scipy/skimage give for them.

argv: out_dir. Cases: a JHU white-matter atlas (mricron-data) against a shifted copy with half of one label merged into another; a
horse mask (skimage) against a dilated copy as PNG 0/255; the camera image against a noisy copy (8-bit PNG)
and as 16-bit; a pair whose affines differ.
"""
import json, os, sys
import numpy as np
import nibabel as nib
from PIL import Image
from scipy import ndimage as ndi
from skimage import io as skio
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

out = sys.argv[1]
P, R = os.path.join(out, 'pred'), os.path.join(out, 'ref')
os.makedirs(P, exist_ok=True)
os.makedirs(R, exist_ok=True)
res = {}


def seg_metrics(A, B, labels, sp, tol=1.0):
    st = ndi.generate_binary_structure(A.ndim, 1)
    m = {}
    for lab in labels:
        a, b = A == lab, B == lab
        sa = a & ~ndi.binary_erosion(a, st, border_value=0)
        sb = b & ~ndi.binary_erosion(b, st, border_value=0)
        da = ndi.distance_transform_edt(~sb, sampling=sp)[sa]
        db = ndi.distance_transform_edt(~sa, sampling=sp)[sb]
        inter = (a & b).sum()
        m[str(lab)] = {'dice': float(2 * inter / (a.sum() + b.sum())), 'iou': float(inter / (a | b).sum()),
                       'hd95': float(max(np.percentile(da, 95), np.percentile(db, 95))),
                       'surfaceDice': float(((da <= tol).sum() + (db <= tol).sum()) / (len(da) + len(db)))}
    return m


# 1. atlas: reference as shipped; prediction shifted one voxel in x, label 7 merged into 5 where x < 45
atlas = nib.load('/usr/share/mricron/templates/JHU-WhiteMatter-labels-2mm.nii.gz')
ref = np.asarray(atlas.dataobj).astype(np.uint8)
pred = np.roll(ref, 1, axis=0)
half = np.zeros_like(pred, dtype=bool)
half[:45] = True
pred[(pred == 7) & half] = 5
nib.save(nib.Nifti1Image(ref, atlas.affine), os.path.join(R, 'atlas.nii.gz'))
nib.save(nib.Nifti1Image(pred, atlas.affine), os.path.join(P, 'atlas.nii.gz'))
labels = [3, 5, 7, 11]
res['atlas'] = {'labels': labels, 'metrics': seg_metrics(pred, ref, labels, [2.0, 2.0, 2.0])}

# 2. horse mask (black horse on white): 255 where the horse is; prediction dilated by two pixels
horse = skio.imread('/usr/lib/python3/dist-packages/skimage/data/horse.png')
if horse.ndim == 3:
    horse = horse[..., 0]
mask = (horse < 128)
dil = ndi.binary_dilation(mask, iterations=2)
Image.fromarray((mask * 255).astype(np.uint8)).save(os.path.join(R, 'horse.png'))
Image.fromarray((dil * 255).astype(np.uint8)).save(os.path.join(P, 'horse.png'))
# PNG rows are y, columns x: transpose to the x-fastest [x, y] order the metrics use; spacing 1 px
res['horse'] = {'labels': [255], 'metrics': seg_metrics((dil * 255).T, (mask * 255).T, [255], [1.0, 1.0])}

# 3. camera: reference and a noisy copy (sigma 20, seed 0), 8-bit
cam = skio.imread('/usr/lib/python3/dist-packages/skimage/data/camera.png')
rng = np.random.default_rng(0)
noisy = np.clip(np.round(cam + rng.normal(0, 20, cam.shape)), 0, 255).astype(np.uint8)
Image.fromarray(cam).save(os.path.join(R, 'camera.png'))
Image.fromarray(noisy).save(os.path.join(P, 'camera.png'))
res['camera'] = {'psnr': float(peak_signal_noise_ratio(cam, noisy)), 'ssim': float(structural_similarity(cam, noisy))}

# 4. the same as 16-bit PNGs (values x 257), the data range becomes 65535
c16, n16 = cam.astype(np.uint16) * 257, noisy.astype(np.uint16) * 257
Image.fromarray(c16).save(os.path.join(R, 'camera16.png'))
Image.fromarray(n16).save(os.path.join(P, 'camera16.png'))
res['camera16'] = {'psnr': float(peak_signal_noise_ratio(c16, n16)), 'ssim': float(structural_similarity(c16, n16))}

# 5. geometry mismatch: the same labels, the prediction's origin moved by 4 mm
G = os.path.join(out, 'geom')
os.makedirs(os.path.join(G, 'pred'), exist_ok=True)
os.makedirs(os.path.join(G, 'ref'), exist_ok=True)
moved = atlas.affine.copy()
moved[0, 3] += 4
nib.save(nib.Nifti1Image(ref, atlas.affine), os.path.join(G, 'ref', 'atlas.nii.gz'))
nib.save(nib.Nifti1Image(ref, moved), os.path.join(G, 'pred', 'atlas.nii.gz'))

print(json.dumps(res))
