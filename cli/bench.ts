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
    process.stdout.write(args.json ? `${JSON.stringify(res)}\n` : `${res.reason}\n${formatRows(res.rows)}\n`);
  },
});

export const benchCommand = defineCommand({
  meta: { name: 'bench', description: 'Benchmarks' },
  subCommands: { kernels: kernelsCommand },
});
