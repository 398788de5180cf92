/**
 * What a person looks at after a batch: per case, overlay PNGs of representative axial slices (the labels in
 * colour over the grey image, anterior up, patient's left on the right as radiologists read), and one HTML page
 * with the summary table and the previews. Slices are taken on the canonical RAS grid, so every case shows
 * the same view whatever the orientation of its file.
 */
import { writePng } from '../io/image/write.ts';
import type { Volume } from '../io/volume.ts';

export const PALETTE: [number, number, number][] = [
  [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60],
];

export function colorOf(label: number): [number, number, number] {
  return label === 0 ? [0, 0, 0] : PALETTE[1 + ((label - 1) % (PALETTE.length - 1))]!;
}

/**
 * Up to `count` axial slices through the labelled region (at its 25/50/75 % heights), or through the middle
 * when nothing was labelled.
 */
export function representativeSlices(labels: ArrayLike<number>, shape: readonly number[], count = 3): number[] {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const plane = nx * ny;
  const zs: number[] = [];
  for (let z = 0; z < nz; z++) {
    for (let i = z * plane; i < (z + 1) * plane; i++) {
      if (labels[i] !== 0) {
        zs.push(z);
        break;
      }
    }
  }
  if (zs.length === 0) return [Math.floor(nz / 2)];
  const picks = Array.from({ length: count }, (_, i) => zs[Math.min(zs.length - 1, Math.floor(((i + 1) * zs.length) / (count + 1)))]!);
  return [...new Set(picks)];
}

/** One overlay PNG of slice z: image windowed to its 1-99 % range, labels blended at `alpha`, boundaries opaque. */
export async function overlayPng(image: ArrayLike<number>, labels: ArrayLike<number>, shape: readonly number[], z: number, alpha = 0.35): Promise<Uint8Array> {
  const [nx = 1, ny = 1] = shape;
  const plane = nx * ny;
  const img = Float32Array.from({ length: plane }, (_, i) => image[z * plane + i]!);
  const sorted = Float32Array.from(img).sort();
  const lo = sorted[Math.floor(0.01 * (plane - 1))]!;
  const hi = Math.max(sorted[Math.floor(0.99 * (plane - 1))]!, lo + 1e-6);
  const data = new Uint8Array(plane * 3);
  // canonical RAS: x runs to the patient's right, y to anterior; display rows top = anterior, columns left = patient's right
  for (let v = 0; v < ny; v++) {
    const y = ny - 1 - v;
    for (let u = 0; u < nx; u++) {
      const x = nx - 1 - u;
      const i = y * nx + x;
      const g = Math.round((255 * Math.min(1, Math.max(0, (img[i]! - lo) / (hi - lo)))));
      const lab = labels[z * plane + i] as number;
      let rgb: [number, number, number] = [g, g, g];
      if (lab !== 0) {
        const c = colorOf(lab);
        const edge = (x > 0 && labels[z * plane + i - 1] !== lab) || (x < nx - 1 && labels[z * plane + i + 1] !== lab) || (y > 0 && labels[z * plane + i - nx] !== lab) || (y < ny - 1 && labels[z * plane + i + nx] !== lab);
        const a = edge ? 1 : alpha;
        rgb = [Math.round(g * (1 - a) + c[0] * a), Math.round(g * (1 - a) + c[1] * a), Math.round(g * (1 - a) + c[2] * a)];
      }
      const o = v * nx + u;
      data[o] = rgb[0];
      data[plane + o] = rgb[1];
      data[2 * plane + o] = rgb[2];
    }
  }
  const vol: Volume = { data, shape: [nx, ny, 1, 3], spacing: [1, 1, 1, 1], affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype: 'uint8', meta: { format: 'image', components: 'rgb', warnings: [] } };
  return writePng(vol, { bitDepth: 8 });
}

export interface ReportCase {
  name: string;
  status: string;
  code?: string;
  message?: string;
  outputs: string[];
  previews: string[];
  volumesMl?: Record<string, number>;
  ms: number;
  warnings: string[];
}

export interface ReportHeader {
  title: string;
  model: string;
  sha256: string;
  device: string;
  version: string;
  started: string;
}

/** A self-contained HTML page (relative links to the previews and outputs). */
export function reportHtml(h: ReportHeader, cases: ReportCase[], classes: string[]): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
  const counts = cases.reduce<Record<string, number>>((a, c) => ({ ...a, [c.status]: (a[c.status] ?? 0) + 1 }), {});
  const legend = classes.slice(1).map((n, i) => `<span class="sw" style="background:rgb(${colorOf(i + 1).join(',')})"></span>${esc(n)}`).join(' ');
  const rows = cases.map((c) => {
    const vols = c.volumesMl ? Object.entries(c.volumesMl).map(([k, v]) => `${esc(k)}: ${v.toFixed(1)} mL`).join('<br>') : '';
    const imgs = c.previews.map((p) => `<img src="${esc(p)}" alt="${esc(c.name)} preview">`).join('');
    const outs = c.outputs.map((o) => `<a href="${esc(o)}">${esc(o)}</a>`).join('<br>');
    const status = c.status === 'done' ? 'done' : `${esc(c.status)} <code>${esc(c.code ?? '')}</code><br><small>${esc(c.message ?? '')}</small>`;
    const warn = c.warnings.length ? `<br><small class="warn">${c.warnings.map(esc).join('<br>')}</small>` : '';
    return `<tr class="${esc(c.status)}"><td>${esc(c.name)}</td><td>${status}${warn}</td><td>${vols}</td><td>${(c.ms / 1000).toFixed(1)} s</td><td>${outs}</td><td class="prev">${imgs}</td></tr>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(h.title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:6px 8px;vertical-align:top;text-align:left}
tr.rejected td,tr.failed td{background:#fff4f4}.prev img{height:180px;margin-right:4px;image-rendering:pixelated;background:#000}
.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}.warn{color:#a60}code{background:#f3f3f3;padding:0 3px}
</style></head><body>
<h1>${esc(h.title)}</h1>
<p>Model <b>${esc(h.model)}</b> (sha256 ${esc(h.sha256.slice(0, 12))}…) on ${esc(h.device)} · gatedvision ${esc(h.version)} · started ${esc(h.started)}</p>
<p>${Object.entries(counts).map(([k, v]) => `${v} ${esc(k)}`).join(' · ')} · legend: ${legend}</p>
<p><small>Previews: axial slices, anterior up, patient's left on the right.</small></p>
<table><thead><tr><th>case</th><th>status</th><th>volumes</th><th>time</th><th>outputs</th><th>previews</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>
</body></html>
`;
}
