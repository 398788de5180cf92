/**
 * `gatedvision demo`: brain extraction of the bundled Colin27 sample with the bundled `brain` model on the
 * embedded default device; writes the mask (NIfTI), previews and the HTML report, and says where.
 */
import { defineCommand } from 'citty';
import { join } from 'node:path';
import { DEVICES, selectDevice, type DeviceRequest } from '../kernels/backend.ts';
import { segmentBatch } from '../pipelines/segment.ts';
import { loadTaskModel, shippedModelsDir } from '../pipelines/task_model.ts';
import { progressReporter } from './output.ts';

export const demoCommand = defineCommand({
  meta: { name: 'demo', description: 'Brain extraction of the bundled T1 sample with the bundled model' },
  args: {
    output: { type: 'string', alias: 'o', default: 'gatedvision-demo', description: 'output folder' },
    device: { type: 'string', default: 'auto', description: `backend: ${DEVICES.join(', ')}` },
  },
  async run({ args }) {
    const choice = await selectDevice(args.device as DeviceRequest);
    process.stderr.write(`${choice.reason}\n`);
    const sample = join(shippedModelsDir(), 'samples', 'colin27_t1_2mm.nii.gz');
    const model = await loadTaskModel('brain');
    const bar = progressReporter('brain extraction');
    let summary;
    try {
      summary = await segmentBatch([sample], model, { outDir: args.output, modelName: 'brain', device: choice.backend, onSlices: (d, t) => bar.onProgress(d, t, 'slices') });
    } finally {
      bar.stop();
      model.dispose();
    }
    const r = summary.records[0];
    if (!r || r.status !== 'done') {
      process.stderr.write(`demo failed: ${r?.code ?? 'no record'}: ${r?.message ?? ''}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`brain mask: ${r.outputs.find((o) => o.endsWith('.nii.gz'))}\n`);
    process.stdout.write(`report:     ${summary.report}\n`);
    process.stdout.write(`(${(r.ms / 1000).toFixed(1)} s on ${choice.backend}; open the mask over the sample in 3D Slicer or ITK-SNAP, or the report in a browser)\n`);
  },
});
