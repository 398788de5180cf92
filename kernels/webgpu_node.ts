/**
 * WebGPU in Node through Dawn (npm `webgpu`): installs navigator.gpu and the GPU* globals tfjs expects,
 * with the toggles that expose shader-f16 and subgroup matrices on NVIDIA Vulkan drivers. Software
 * adapters (SwiftShader) are used only when asked for, because they are orders of magnitude slower.
 */
import { createRequire } from 'node:module';
import { GatedError } from '../core/errors.ts';

const require = createRequire(import.meta.url);

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  software: boolean;
  features: string[];
}

let installed: Promise<AdapterSummary | null> | undefined;

/** Installs navigator.gpu once; resolves to the adapter found (null when there is none). */
export function installDawn(): Promise<AdapterSummary | null> {
  installed ??= (async () => {
    let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
    try {
      mod = require('webgpu');
    } catch (e) {
      throw new GatedError('missing_dependency', `the webgpu package (Dawn) could not be loaded: ${(e as Error).message}`);
    }
    Object.assign(globalThis, mod.globals);
    // timestamp quantization is a browser fingerprinting guard; here it would only blur kernel timings.
    // GATEDVISION_DAWN_FEATURES adds Dawn toggles (comma-separated) for measurements, e.g. disable_robustness.
    const extra = (process.env.GATEDVISION_DAWN_FEATURES ?? '').split(',').map((t) => t.trim()).filter((t) => /^[a-z0-9_]+$/.test(t));
    const gpu = mod.create([`enable-dawn-features=${['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia', ...extra].join(',')}`, 'disable-dawn-features=timestamp_quantization']);
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return null;
    const info = (adapter as unknown as { info: { vendor: string; architecture: string; device: string; description: string } }).info;
    const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
    return {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      software: /swiftshader|llvmpipe|lavapipe|software|cpu/.test(text),
      features: [...adapter.features].map(String).sort(),
    };
  })();
  return installed;
}

/** Points Vulkan at Debian chromium's SwiftShader ICD (tests and explicit software runs only). */
export function useSwiftShader(): void {
  process.env.VK_ICD_FILENAMES ??= '/usr/lib/chromium/vk_swiftshader_icd.json';
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
}
