"""Training and test images for the shipped `denoise` model, from Debian packages only.

Usage: /usr/bin/python3 bench/denoise/prepare_data.py OUT_DIR
Writes OUT_DIR/train/clean/*.png and OUT_DIR/test/clean/*.png (8-bit gray). Sources: python3-skimage's
bundled photographs (colour reduced to luma) and axial slices of mricron-data's Colin27 T1 (ch2.nii.gz, scaled
to 0-255 at its 99.5th percentile). The test set is fixed by name: four photographs and two MR slices that
are at least 20 mm from every training slice; nothing in it is used for training or for tuning a baseline.
"""
import os, sys
import numpy as np
import nibabel as nib
from PIL import Image
from skimage import io as skio
from skimage.color import rgb2gray

SK = '/usr/lib/python3/dist-packages/skimage/data/'
PHOTOS = ['astronaut.png', 'brick.png', 'camera.png', 'cell.png', 'chelsea.png', 'clock_motion.png', 'coffee.png', 'coins.png',
          'color.png', 'grass.png', 'gravel.png', 'hubble_deep_field.jpg', 'ihc.png', 'moon.png', 'motorcycle_left.png',
          'page.png', 'retina.jpg', 'rocket.jpg', 'text.png']
TEST_PHOTOS = {'camera', 'coins', 'moon', 'astronaut'}
CH2 = '/usr/share/mricron/templates/ch2.nii.gz'
MR_TRAIN = list(range(30, 67, 4)) + list(range(115, 152, 4))  # axial slice indices (1 mm)
MR_TEST = [86, 95]


def gray8(a):
    if a.ndim == 3:
        a = rgb2gray(a[..., :3]) * 255.0
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def main(out):
    for s in ('train', 'test'):
        os.makedirs(os.path.join(out, s, 'clean'), exist_ok=True)
    for f in PHOTOS:
        name = os.path.splitext(f)[0]
        img = gray8(skio.imread(SK + f))
        if name == 'retina':  # 1411 px: halve so one image does not dominate the patches
            img = np.asarray(Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.BICUBIC))
        Image.fromarray(img).save(os.path.join(out, 'test' if name in TEST_PHOTOS else 'train', 'clean', name + '.png'))
    vol = np.asarray(nib.load(CH2).dataobj).astype(np.float64)
    hi = np.percentile(vol[vol > 0], 99.5)
    for z in MR_TRAIN + MR_TEST:
        # voxel (x, y) → column x, row y with anterior up: transpose and flip y
        sl = np.clip(np.round(vol[:, :, z].T[::-1] / hi * 255), 0, 255).astype(np.uint8)
        Image.fromarray(sl).save(os.path.join(out, 'test' if z in MR_TEST else 'train', 'clean', f'mri_ch2_z{z:03d}.png'))
    for s in ('train', 'test'):
        print(s, len(os.listdir(os.path.join(out, s, 'clean'))), 'images')


if __name__ == '__main__':
    main(sys.argv[1])
