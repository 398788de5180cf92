/** `gatedvision evaluate --pred <dir> --ref <dir>`: segmentation and restoration metrics per case, with a summary. */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';
import { evaluateDirs, type CaseResult, type EvalTask, type EvaluateSummary } from '../pipelines/evaluate.ts';
import { progressReporter } from './output.ts';

export const evaluateCommand = defineCommand({
  meta: { name: 'evaluate', description: 'Score predictions against references paired by file name (Dice, IoU, HD95, surface Dice; PSNR, SSIM)' },
  args: {
    pred: { type: 'string', required: true, description: 'folder of predictions (NIfTI label maps, PNG masks or images)' },
    ref: { type: 'string', required: true, description: 'folder of references with the same file names' },
    task: { type: 'string', description: 'segment | restore (default: label maps when the reference has few integer values)' },
    tolerance: { type: 'string', default: '1', description: 'surface Dice tolerance in mm' },
    labels: { type: 'string', description: 'comma-separated labels to score (default: every nonzero label)' },
    json: { type: 'boolean', description: 'print every number as JSON' },
  },
  async run({ args }) {
    const task = args.task as EvalTask | undefined;
    if (task !== undefined && task !== 'segment' && task !== 'restore') throw new GatedError('usage', `--task must be segment or restore; got '${args.task}'`);
    const tolerance = Number(args.tolerance);
    if (!(tolerance >= 0)) throw new GatedError('usage', `--tolerance must be a number ≥ 0; got '${args.tolerance}'`);
    const labels = args.labels?.split(',').map((s) => Number(s.trim()));
    if (labels && !labels.every((l) => Number.isFinite(l))) throw new GatedError('usage', `--labels must be numbers separated by commas; got '${args.labels}'`);
    const json = Boolean(args.json);
    const progress = progressReporter('evaluate', json);
    let summary: EvaluateSummary;
    try {
      summary = await evaluateDirs(String(args.pred), String(args.ref), { ...(task ? { task } : {}), tolerance, ...(labels ? { labels } : {}), onCase: progress.onProgress });
    } finally {
      progress.stop();
    }
    if (json) process.stdout.write(`${JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))}\n`);
    else process.stdout.write(formatSummary(summary));
  },
});

/** Plain-text tables: one row per case and label, then the means. */
export function formatSummary(s: EvaluateSummary): string {
  const f = (x: number, d = 4) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
  const lines: string[] = [];
  const seg = s.cases.filter((c): c is Extract<CaseResult, { task: 'segment' }> => c.task === 'segment');
  const res = s.cases.filter((c): c is Extract<CaseResult, { task: 'restore' }> => c.task === 'restore');
  if (seg.length) {
    lines.push(row(['case', 'label', 'dice', 'iou', 'hd95_mm', 'surface_dice']));
    for (const c of seg) for (const l of c.labels) lines.push(row([c.name, String(l.label), f(l.dice), f(l.iou), f(l.hd95, 2), f(l.surfaceDice)]));
    lines.push('', row(['mean', 'label', 'dice', 'iou', 'hd95_mm', 'surface_dice']));
    for (const l of s.labels) lines.push(row([`${l.cases} cases`, String(l.label), f(l.dice), f(l.iou), f(l.hd95, 2), f(l.surfaceDice)]));
  }
  if (res.length) {
    if (lines.length) lines.push('');
    lines.push(row(['case', 'psnr_db', 'ssim']));
    for (const c of res) lines.push(row([c.name, f(c.psnr, 2), f(c.ssim)]));
    if (s.restore) lines.push(row([`mean of ${s.restore.cases}`, f(s.restore.psnr, 2), f(s.restore.ssim)]));
  }
  for (const m of s.missingPred) lines.push(`no prediction for ${m}`);
  for (const m of s.missingRef) lines.push(`no reference for ${m}`);
  return `${lines.join('\n')}\n`;
}

function row(cells: string[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(24) : c.padStart(12))).join(' ');
}
