/**
 * Restoration metrics on 2D images (x-fastest, one channel): PSNR and SSIM with scikit-image's defaults
 * (7x7 uniform window, sample covariance, K1 0.01, K2 0.03, borders of (7-1)/2 excluded from the mean).
 */
import { GatedError } from '../../core/errors.ts';

export function psnr(ref: ArrayLike<number>, test: ArrayLike<number>, dataRange: number): number {
  if (ref.length !== test.length) throw new GatedError('shape', 'images differ in size');
  let mse = 0;
  for (let i = 0; i < ref.length; i++) mse += (ref[i]! - test[i]!) ** 2;
  mse /= ref.length;
  return mse === 0 ? Infinity : 10 * Math.log10((dataRange * dataRange) / mse);
}

export function ssim(ref: ArrayLike<number>, test: ArrayLike<number>, width: number, height: number, dataRange: number, win = 7): number {
  if (ref.length !== width * height || test.length !== width * height) throw new GatedError('shape', 'images differ in size');
  if (width < win || height < win) throw new GatedError('shape', `SSIM needs images of at least ${win}x${win}`);
  const n = width * height;
  const x = Float64Array.from(ref);
  const y = Float64Array.from(test);
  const xx = new Float64Array(n);
  const yy = new Float64Array(n);
  const xy = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    xx[i] = x[i]! * x[i]!;
    yy[i] = y[i]! * y[i]!;
    xy[i] = x[i]! * y[i]!;
  }
  const [ux, uy, uxx, uyy, uxy] = [x, y, xx, yy, xy].map((a) => boxFilter(a, width, height, win)) as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
  const np = win * win;
  const covNorm = np / (np - 1);
  const c1 = (0.01 * dataRange) ** 2;
  const c2 = (0.03 * dataRange) ** 2;
  const pad = (win - 1) >> 1;
  let sum = 0;
  let count = 0;
  for (let j = pad; j < height - pad; j++) {
    for (let i = pad; i < width - pad; i++) {
      const p = i + width * j;
      const vx = covNorm * (uxx[p]! - ux[p]! * ux[p]!);
      const vy = covNorm * (uyy[p]! - uy[p]! * uy[p]!);
      const vxy = covNorm * (uxy[p]! - ux[p]! * uy[p]!);
      const s = ((2 * ux[p]! * uy[p]! + c1) * (2 * vxy + c2)) / ((ux[p]! ** 2 + uy[p]! ** 2 + c1) * (vx + vy + c2));
      sum += s;
      count++;
    }
  }
  return sum / count;
}

// --- internal ---

/** Mean over a win x win window with half-sample symmetric borders (scipy's mode='reflect'). */
function boxFilter(a: Float64Array, w: number, h: number, win: number): Float64Array {
  const half = win >> 1;
  const reflect = (i: number, n: number) => {
    let k = i;
    while (k < 0 || k >= n) k = k < 0 ? -k - 1 : 2 * n - k - 1;
    return k;
  };
  const tmp = new Float64Array(a.length);
  const out = new Float64Array(a.length);
  for (let j = 0; j < h; j++) {
    for (let i = 0; i < w; i++) {
      let s = 0;
      for (let d = -half; d <= half; d++) s += a[reflect(i + d, w) + w * j]!;
      tmp[i + w * j] = s / win;
    }
  }
  for (let j = 0; j < h; j++) {
    for (let i = 0; i < w; i++) {
      let s = 0;
      for (let d = -half; d <= half; d++) s += tmp[i + w * reflect(j + d, h)]!;
      out[i + w * j] = s / win;
    }
  }
  return out;
}
