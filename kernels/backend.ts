/**
 * Device selection. `auto` tries, in order: the TensorFlow C backend (only if @tensorflow/tfjs-node-gpu or
 * -node loads), WebGPU on a hardware adapter (Dawn), WebAssembly (XNNPACK), then the pure-JS CPU backend,
 * and says in one line what it chose and why the others were skipped.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GatedError } from '../core/errors.ts';
import { registerAllKernels } from './register_all.ts';
import { installDawn, useSwiftShader } from './webgpu_node.ts';
import { registerWebgpuBackend } from './_webgpu_internal.ts';

export type DeviceRequest = 'auto' | 'webgpu' | 'wasm' | 'cpu' | 'tensorflow';
export const DEVICES: readonly DeviceRequest[] = ['auto', 'webgpu', 'wasm', 'cpu', 'tensorflow'];

export interface DeviceChoice {
  backend: string;
  /** One line: what was chosen and why the others were not. */
  reason: string;
  /** WebGPU: the device features enabled (of timestamp-query, shader-f16, subgroups, subgroup matrices). */
  features: string[];
}

const require = createRequire(import.meta.url);

export async function selectDevice(req: DeviceRequest = 'auto', opts: { allowSoftware?: boolean } = {}): Promise<DeviceChoice> {
  if (!DEVICES.includes(req)) throw new GatedError('config', `unknown device '${req}'; use one of ${DEVICES.join(', ')}`);
  const skipped: string[] = [];
  const order: Exclude<DeviceRequest, 'auto'>[] = req === 'auto' ? ['tensorflow', 'webgpu', 'wasm', 'cpu'] : [req];
  for (const d of order) {
    const attempt = await tryDevice(d, opts.allowSoftware ?? false);
    if (attempt.ok) {
      registerAllKernels();
      const why = skipped.length ? `; skipped ${skipped.join('; ')}` : '';
      return { backend: d, reason: `device ${d}: ${attempt.detail}${why}`, features: attempt.features };
    }
    if (req !== 'auto') throw new GatedError('config', `device ${d} is not available: ${attempt.detail}`);
    skipped.push(`${d} (${attempt.detail})`);
  }
  throw new GatedError('internal', `no backend could start: ${skipped.join('; ')}`);
}

// --- internal ---

async function tryDevice(d: Exclude<DeviceRequest, 'auto'>, allowSoftware: boolean): Promise<{ ok: boolean; detail: string; features: string[] }> {
  try {
    switch (d) {
      case 'tensorflow': {
        for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
          try {
            require(pkg);
            if (await tf.setBackend('tensorflow')) return { ok: true, detail: `${pkg}`, features: [] };
          } catch {
            // not installed (the usual case): try the next
          }
        }
        return { ok: false, detail: 'tfjs-node is not installed', features: [] };
      }
      case 'webgpu': {
        if (allowSoftware) useSwiftShader();
        const adapter = await installDawn();
        if (!adapter) return { ok: false, detail: 'no WebGPU adapter', features: [] };
        if (adapter.software && !allowSoftware) return { ok: false, detail: `only a software adapter (${adapter.description})`, features: [] };
        const features = await registerWebgpuBackend();
        if (!(await tf.setBackend('webgpu'))) return { ok: false, detail: 'the tfjs WebGPU backend failed to start', features: [] };
        return { ok: true, detail: `${adapter.vendor} ${adapter.device || adapter.description}`.trim(), features };
      }
      case 'wasm': {
        const wasm = await import('@tensorflow/tfjs-backend-wasm');
        wasm.setWasmPaths(`${join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/')}`);
        if (!(await tf.setBackend('wasm'))) return { ok: false, detail: 'the wasm backend failed to start', features: [] };
        return { ok: true, detail: 'WebAssembly (XNNPACK)', features: [] };
      }
      case 'cpu': {
        await import('@tensorflow/tfjs-backend-cpu');
        await tf.setBackend('cpu');
        return { ok: true, detail: 'pure JavaScript', features: [] };
      }
    }
  } catch (e) {
    return { ok: false, detail: (e as Error).message.split('\n')[0] ?? 'failed', features: [] };
  }
}
