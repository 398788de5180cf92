/** The tasks a sandboxed child may run, by name. */
import type { LoadOptions } from './load.ts';
import type { Progress } from './types.ts';

type Task = (payload: unknown, progress: Progress) => Promise<unknown>;

export const SANDBOX_TASKS: Record<string, Task> = {
  load: async (payload, progress) => {
    const { path, opts } = payload as { path: string; opts: LoadOptions };
    // Imported on demand so the child starts fast and only loads the readers it runs.
    const { loadInputDirect } = await import('./load.ts');
    return loadInputDirect(path, { ...opts, onProgress: progress });
  },
  convert: async (payload, progress) => {
    const { input, target, opts } = payload as { input: string; target: import('../pipelines/convert.ts').ConvertTarget; opts: LoadOptions };
    const { convertInputDirect } = await import('../pipelines/convert.ts');
    return convertInputDirect(input, target, { ...opts, onProgress: progress });
  },
  describe: async (payload, progress) => {
    const { input, opts } = payload as { input: string; opts: LoadOptions };
    const { loadInputDirect } = await import('./load.ts');
    const { stripVoxels } = await import('../pipelines/convert.ts');
    return stripVoxels(await loadInputDirect(input, { ...opts, onProgress: progress }));
  },
  dicomStreamPlan: async (payload) => {
    const { path, opts } = payload as { path: string; opts: LoadOptions };
    const [{ planDicomStream }, { resolveLimits }] = await Promise.all([import('./dicom/stream_plan.ts'), import('../core/limits.ts')]);
    return planDicomStream(path, resolveLimits(opts.limits));
  },
};

/** The modules each task imports, loaded by a child started ahead of its task (see prestartSandbox). */
// DICOM's reader is the one most inputs need; the others load when an input turns out to need them.
const dicomReader = () => import('./load.ts').then((m) => m.readers.dicom());
export const SANDBOX_PRELOAD: Record<string, () => Promise<unknown>> = {
  load: () => dicomReader(),
  convert: () => Promise.all([import('../pipelines/convert.ts'), dicomReader(), import('./nifti/write.ts'), import('../core/atomic.ts')]),
  describe: () => Promise.all([import('../pipelines/convert.ts'), dicomReader()]),
  dicomStreamPlan: () => import('./dicom/stream_plan.ts'),
};

// Misbehaving tasks that prove the sandbox contains crashes, hangs and runaway memory; only present when
// a test asks for them through the environment, never in normal runs.
if (process.env.GATEDVISION_SANDBOX_SELFTEST === '1') {
  SANDBOX_TASKS.selftest_echo = async (payload) => payload;
  SANDBOX_TASKS.selftest_argv = async () => process.argv.slice(2);
  SANDBOX_TASKS.selftest_hang = () => new Promise(() => setInterval(() => undefined, 1000));
  SANDBOX_TASKS.selftest_spin = async () => {
    for (;;);
  };
  // (module (func (export "run") (loop (br 0)))) and (module (func (export "run") unreachable))
  SANDBOX_TASKS.selftest_wasm_spin = async () => wasmRun([0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b]);
  SANDBOX_TASKS.selftest_wasm_trap = async () => wasmRun([0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b]);
  SANDBOX_TASKS.selftest_native = async () => {
    const { assertNativeAllowed } = await import('./sandbox_guard.ts');
    assertNativeAllowed('this task');
    return { pid: process.pid };
  };
  SANDBOX_TASKS.selftest_crash = async () => process.abort();
  SANDBOX_TASKS.selftest_alloc = async () => {
    const hold: Uint8Array[] = [];
    for (;;) {
      hold.push(new Uint8Array(64 * 1024 * 1024).fill(1));
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  SANDBOX_TASKS.selftest_heap = async () => {
    const hold: number[][] = [];
    for (;;) hold.push(Array.from({ length: 1024 }, (_, i) => i + hold.length));
  };
  SANDBOX_TASKS.selftest_throw = async () => {
    throw 'dicomParser.readFixedString: attempt to read past end of buffer';
  };
}

/** Runs the exported function "run" of a one-function WebAssembly module with the given code section. */
function wasmRun(code: number[]): unknown {
  const head = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x07, 0x01, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00];
  // (the project's type libraries declare no WebAssembly constructors)
  const wasm = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object) => { exports: { run(): unknown } } } }).WebAssembly;
  return new wasm.Instance(new wasm.Module(new Uint8Array([...head, ...code]))).exports.run();
}
