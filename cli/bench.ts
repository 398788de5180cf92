/** `gatedvision bench kernels [--device ...] [--json] [--small] [--software]`: our GPU kernels beside their reference composites. */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';
import { DEVICES, type DeviceRequest } from '../kernels/backend.ts';
import { formatRows, runKernelBench } from '../bench/gpu_kernels.ts';

const kernelsCommand = defineCommand({
  meta: { name: 'kernels', description: 'Time each custom kernel beside the stock tfjs composite (peak GPU memory on webgpu)' },
  args: {
    device: { type: 'string', default: 'webgpu', description: `backend: ${DEVICES.join(', ')}` },
    json: { type: 'boolean', description: 'print JSON' },
    small: { type: 'boolean', description: 'tiny shapes (default on non-GPU backends)' },
    software: { type: 'boolean', description: 'allow a software WebGPU adapter (SwiftShader)' },
    repeat: { type: 'string', description: 'timed repeats per implementation (default 10)' },
    only: { type: 'string', description: 'only ops whose name contains this' },
  },
  async run({ args }) {
    const device = args.device as DeviceRequest;
    if (!DEVICES.includes(device)) throw new GatedError('config', `unknown device '${args.device}'; use one of ${DEVICES.join(', ')}`);
    const repeat = args.repeat === undefined ? undefined : Number(args.repeat);
    if (repeat !== undefined && !(Number.isInteger(repeat) && repeat > 0)) throw new GatedError('config', `--repeat must be a positive integer; got ${args.repeat}`);
    const res = await runKernelBench({
      device,
      allowSoftware: Boolean(args.software),
      ...(args.small ? { small: true } : {}),
      ...(repeat !== undefined ? { repeat } : {}),
      ...(args.only ? { only: args.only } : {}),
    });
    // the agreement checks (fused BiGLA against the split scans, f16 matmul against fp32) belong with the timings
    const checks = res.checks.map((c) => `${c.op} ${c.shape}: max |diff| ${c.maxAbsDiff.toExponential(2)} (max |out| ${c.maxAbs.toFixed(2)})`).join('\n');
    process.stdout.write(args.json ? `${JSON.stringify(res)}\n` : `${res.reason}\n${formatRows(res.rows)}\n${checks}\n`);
  },
});

const segmentBench = defineCommand({
  meta: { name: 'segment', description: 'End-to-end segment of a 0.5 mm brain MRI and a 512x512x300 volume: wall time and peak RSS of the process tree' },
  args: {
    device: { type: 'string', default: 'auto', description: `backend: ${DEVICES.join(', ')}` },
    model: { type: 'string', default: 'brain' },
    ch2better: { type: 'string', default: '/usr/share/mricron/templates/ch2better.nii.gz', description: "mricron-data's 0.5 mm Colin27" },
    report: { type: 'boolean', default: true, description: '--no-report: segment without previews/report (no image codec needed)' },
    json: { type: 'boolean', description: 'print JSON' },
  },
  async run({ args }) {
    const { runSegmentBench, formatSegmentRows } = await import('../bench/segment.ts');
    const rows = await runSegmentBench({ device: args.device, model: args.model, ch2better: args.ch2better, noReport: args.report === false, cli: [process.execPath, ...process.execArgv, process.argv[1]!], log: (l) => process.stderr.write(`${l}\n`) });
    process.stdout.write(args.json ? `${JSON.stringify(rows)}\n` : `${formatSegmentRows(rows)}\n`);
  },
});

export const benchCommand = defineCommand({
  meta: { name: 'bench', description: 'Benchmarks' },
  subCommands: { kernels: kernelsCommand, segment: segmentBench },
});
