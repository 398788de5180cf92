"""Training data for the restore-training test, and the FFT-loss oracle. argv: out_dir.

Writes 4 clean 96x96 crops of skimage images to out_dir/clean; reads {"a": [...], "b": [...], "shape": [B,H,W,C]}
from stdin and prints numpy's mean |Re| + |Im| of fft2(a - b, norm='ortho') over H, W.
"""
import json, os, sys
import numpy as np
from PIL import Image
from skimage import io as skio

out = sys.argv[1]
os.makedirs(os.path.join(out, 'clean'), exist_ok=True)
D = '/usr/lib/python3/dist-packages/skimage/data/'
for name, (y, x) in [('camera', (120, 200)), ('coins', (60, 100)), ('moon', (200, 200)), ('page', (40, 40))]:
    im = skio.imread(D + name + '.png')
    Image.fromarray(im[y:y + 96, x:x + 96]).save(os.path.join(out, 'clean', name + '.png'))
c = json.loads(sys.stdin.read())
a = np.array(c['a'], np.float64).reshape(c['shape'])
b = np.array(c['b'], np.float64).reshape(c['shape'])
f = np.fft.fft2(a - b, axes=(1, 2), norm='ortho')
print(json.dumps({'fft': float(np.mean(np.abs(f.real) + np.abs(f.imag)))}))
