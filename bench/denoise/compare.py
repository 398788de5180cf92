"""PSNR at sigma=25 on the held-out test images: skimage's non-local means and TV denoising against our model.

Usage: /usr/bin/python3 bench/denoise/compare.py DATA_DIR --model models/denoise [--device wasm] [--tta] [--draw K] [--json out.json]
DATA_DIR is what prepare_data.py wrote. Noise: Gaussian sigma 25 (0-255 scale), one fixed seed per image,
rounded and clipped to 8 bits, so every method sees the same noisy PNG. Non-local means gets the true sigma
(h = 0.8 sigma, fast_mode, 5x5 patches, 13x13 search: skimage's documented recipe); the TV weight is chosen
by grid search on the training images (other seed), never on the test images. Our model runs through
`gatedvision restore` on the noisy PNGs, as a user would run it. Also recorded per image: the mean error of our
output in bands of the clean intensity (`ours_bias`; printed with --bias), where a bias near black or white shows.
"""
import argparse, glob, json, os, subprocess, sys, tempfile, time
import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

SIGMA = 25.0
BANDS = [(0, 32), (32, 64), (64, 128), (128, 192), (192, 256)]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(p):
    return np.asarray(Image.open(p)).astype(np.float64)


def noisy8(clean, seed):
    rng = np.random.default_rng(seed)
    return np.clip(np.round(clean + rng.normal(0, SIGMA, clean.shape)), 0, 255)


def nlm(x):
    s = SIGMA / 255
    return denoise_nl_means(x / 255, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6) * 255


def tune_tv(train_files):
    weights = [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25]
    scores = {w: [] for w in weights}
    for i, f in enumerate(train_files):
        c = load(f)
        n = noisy8(c, 1000 + i)
        for w in weights:
            scores[w].append(psnr(c, np.clip(denoise_tv_chambolle(n / 255, weight=w) * 255, 0, 255), data_range=255))
    best = max(weights, key=lambda w: np.mean(scores[w]))
    return best, {str(w): float(np.mean(v)) for w, v in scores.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('data')
    ap.add_argument('--model', default='denoise')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--json')
    ap.add_argument('--tta', action='store_true', help='pass --tta to gatedvision restore (8 flips/rotations averaged)')
    ap.add_argument('--bias', action='store_true', help='print the mean error of our output by band of clean intensity')
    ap.add_argument('--baselines-only', action='store_true', help='skip our model (no trained model at hand)')
    ap.add_argument('--draw', type=int, default=0, help='another noise draw (seed: image index + 100 x DRAW) for every method; '
                    'the target is measured on draw 0, the others show how much of a margin is one draw\'s luck')
    a = ap.parse_args()
    test = sorted(glob.glob(os.path.join(a.data, 'test', 'clean', '*.png')))
    train = sorted(glob.glob(os.path.join(a.data, 'train', 'clean', '*.png')))
    tv_w, tv_grid = tune_tv(train)
    work = tempfile.mkdtemp(prefix='gv-denoise-bench-')
    os.makedirs(os.path.join(work, 'noisy'))
    rows = []
    t_nlm = t_tv = 0.0
    for i, f in enumerate(test):
        name = os.path.basename(f)
        c = load(f)
        n = noisy8(c, i + 100 * a.draw)
        Image.fromarray(n.astype(np.uint8)).save(os.path.join(work, 'noisy', name))
        t0 = time.time()
        d_nlm = np.clip(nlm(n), 0, 255)
        t1 = time.time()
        d_tv = np.clip(denoise_tv_chambolle(n / 255, weight=tv_w) * 255, 0, 255)
        t2 = time.time()
        t_nlm += t1 - t0
        t_tv += t2 - t1
        rows.append({'image': name, 'noisy': psnr(c, n, data_range=255), 'nlm': psnr(c, d_nlm, data_range=255), 'tv': psnr(c, d_tv, data_range=255)})
    t_ours = None
    if not a.baselines_only:
        t0 = time.time()
        run_ours(a, work, rows, test)
        t_ours = time.time() - t0
    keys = ('noisy', 'nlm', 'tv') if a.baselines_only else ('noisy', 'nlm', 'tv', 'ours')
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    res = {'sigma': SIGMA, 'tv_weight': tv_w, 'tv_grid_train_psnr': tv_grid, 'rows': rows, 'mean': mean,
           'seconds': {'nlm': t_nlm, 'tv': t_tv, 'ours_cli_total': t_ours}, 'model': None if a.baselines_only else a.model, 'device': a.device, 'tta': a.tta, 'draw': a.draw}
    print(''.join([f"{'image':24s}"] + [f'{k:>8s}' for k in keys]))
    for r in rows + [dict(image='mean', **mean)]:
        print(''.join([f"{r['image']:24s}"] + [f'{r[k]:8.2f}' for k in keys]))
    if not a.baselines_only:
        res['margin_db'] = {'vs_nlm': mean['ours'] - mean['nlm'], 'vs_tv': mean['ours'] - mean['tv']}
        print(f"ours - NLM {res['margin_db']['vs_nlm']:+.2f} dB, ours - TV {res['margin_db']['vs_tv']:+.2f} dB (target: +1.5 dB over both)")
    if a.bias and not a.baselines_only:
        print('mean error of ours by clean intensity (gray levels; share of pixels):')
        for r in rows:
            print(f"{r['image']:24s}" + '  '.join(f"{k}: {v['mean_error']:+.2f} ({v['share'] * 100:.0f}%)" for k, v in r['ours_bias'].items()))
    print(f'TV weight {tv_w} (chosen on the training images); NLM {t_nlm:.1f} s, TV {t_tv:.1f} s over {len(rows)} images')
    if a.json:
        with open(a.json, 'w') as fh:
            json.dump(res, fh, indent=2)


def run_ours(a, work, rows, test):
    cmd = ['node', os.path.join(ROOT, 'bin', 'gatedvision.mjs'), 'restore', os.path.join(work, 'noisy'), '-o', os.path.join(work, 'ours'), '--model', a.model, '--device', a.device, '--json'] + (['--tta'] if a.tta else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    for r, f in zip(rows, test):
        c, o = load(f), load(os.path.join(work, 'ours', r['image']))
        r['ours'] = psnr(c, o, data_range=255)
        r['ours_bias'] = {f'{lo}-{hi}': {'mean_error': float((o - c)[(c >= lo) & (c < hi)].mean()), 'share': float(((c >= lo) & (c < hi)).mean())}
                          for lo, hi in BANDS if ((c >= lo) & (c < hi)).any()}


if __name__ == '__main__':
    sys.exit(main())
