/**
 * Held-out evaluation of a brain-extraction model on the training set's held-out slabs, the way `segment`
 * runs it (whole volume, then post-processing): Dice raw, with the largest component kept, with holes filled,
 * with flip TTA; and robustness to intensity scaling, a bias field and a reoriented header.
 * Usage: tsx scripts/eval_brain.ts <model dir> <dataset dir> [--device wasm] [--json]
 */
import { selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { fillHoles, keepLargestComponent } from '../pipelines/postprocess.ts';
import { predictLabels } from '../pipelines/segment_volume.ts';
import { loadTaskModel } from '../pipelines/task_model.ts';
import { loadSegDataset, splitCases, type SegCase } from '../pipelines/train/seg_data.ts';

const args = process.argv.slice(2);
const [modelDir, dataDir] = args;
const device = (args[args.indexOf('--device') + 1] ?? 'wasm') as DeviceRequest;
await selectDevice(args.includes('--device') ? device : 'wasm');
const model = await loadTaskModel(modelDir!);
const cases = await loadSegDataset(dataDir!, model.manifest.input);
const split = splitCases(cases, model.manifest.input.context);

function dice(pred: Uint8Array | Uint16Array, c: SegCase, zs: number[]): number {
  const plane = c.geo.nx * c.geo.ny;
  let inter = 0;
  let sp = 0;
  let sr = 0;
  for (const z of zs) {
    for (let i = z * plane; i < (z + 1) * plane; i++) {
      const p = pred[i]! > 0 ? 1 : 0;
      const r = c.labels[i]! > 0 ? 1 : 0;
      inter += p & r;
      sp += p;
      sr += r;
    }
  }
  return (2 * inter) / Math.max(sp + sr, 1);
}

const rows: Record<string, unknown>[] = [];
for (const { c, zs } of split.val) {
  const k = cases[c]!;
  const t0 = Date.now();
  const raw = await predictLabels(model, k.image, k.shape, k.spacing, {});
  const ms = Date.now() - t0;
  const lcc = raw.slice();
  keepLargestComponent(lcc, k.shape, 1);
  const filled = lcc.slice();
  fillHoles(filled, k.shape, 1);
  const tta = await predictLabels(model, k.image, k.shape, k.spacing, { tta: true });
  keepLargestComponent(tta, k.shape, 1);
  fillHoles(tta, k.shape, 1);
  rows.push({ case: k.name, raw: dice(raw, k, zs), lcc: dice(lcc, k, zs), lcc_fill: dice(filled, k, zs), tta_lcc_fill: dice(tta, k, zs), ms });
}
process.stdout.write(args.includes('--json') ? `${JSON.stringify(rows)}\n` : rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
