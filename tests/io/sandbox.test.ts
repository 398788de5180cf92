/**
 * The sandbox contains crashes, hangs, runaway memory and odd throws as typed errors; the caller lives on.
 * Every case runs in both modes: a child process and a worker thread of this process.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { resolveLimits } from '../../core/limits.ts';
import { runSandboxed, type SandboxMode } from '../../io/sandbox.ts';

beforeAll(() => {
  process.env.GATEDVISION_SANDBOX_SELFTEST = '1';
});

const limits = resolveLimits({ sandboxTimeoutMs: 8_000, sandboxRssMb: 600, sandboxHeapMb: 256 });

describe.each(['process', 'worker'] as const)('runSandboxed (%s)', (mode: SandboxMode) => {
  async function codeOf(task: string, l = limits): Promise<string> {
    try {
      await runSandboxed(task, null, { limits: l, mode });
      return 'resolved';
    } catch (e) {
      expect(e).toBeInstanceOf(GatedError);
      return (e as GatedError).code;
    }
  }
  // after every failure the caller can still run the next task (a worker thread shares the caller's process)
  async function stillWorks(): Promise<void> {
    if (mode === 'process') return;
    expect(await runSandboxed<number[]>('selftest_echo', [1, 2], { limits, mode })).toEqual([1, 2]);
  }

  it('returns typed arrays intact', async () => {
    const payload = { a: new Int16Array([-3, 7, 32767]), b: new Float64Array([Math.PI]), big: new Float32Array(1 << 19).fill(0.5) };
    const out = await runSandboxed<typeof payload>('selftest_echo', payload, { limits, mode });
    expect(out.a).toBeInstanceOf(Int16Array);
    expect(Array.from(out.a)).toEqual([-3, 7, 32767]);
    expect(out.b[0]).toBe(Math.PI);
    // 2 MiB: through a transfer file (process) or moved (worker)
    expect(out.big).toBeInstanceOf(Float32Array);
    expect(out.big.length).toBe(1 << 19);
    expect(out.big.every((x) => x === 0.5)).toBe(true);
  });
  it('a hang becomes timeout', async () => {
    const t0 = Date.now();
    expect(await codeOf('selftest_hang', { ...limits, sandboxTimeoutMs: 1000 })).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(5000);
    await stillWorks();
  });
  it('an endless JavaScript loop and an endless WebAssembly loop become timeout', async () => {
    expect(await codeOf('selftest_spin', { ...limits, sandboxTimeoutMs: 1000 })).toBe('timeout');
    expect(await codeOf('selftest_wasm_spin', { ...limits, sandboxTimeoutMs: 1000 })).toBe('timeout');
    await stillWorks();
  });
  it('a WebAssembly trap is a typed error', async () => {
    await expect(runSandboxed('selftest_wasm_trap', null, { limits, mode })).rejects.toMatchObject({ code: 'internal', message: expect.stringContaining('unreachable') });
    await stillWorks();
  });
  it('runaway buffer allocation is stopped by the RSS watchdog as too_large', async () => {
    expect(await codeOf('selftest_alloc')).toBe('too_large');
    await stillWorks();
  });
  it('a full heap is too_large', async () => {
    expect(await codeOf('selftest_heap', { ...limits, sandboxHeapMb: 64, sandboxTimeoutMs: 30_000, sandboxRssMb: 2048 })).toBe('too_large');
    await stillWorks();
  });
  it('a thrown string comes back as a GatedError with its message', async () => {
    await expect(runSandboxed('selftest_throw', null, { limits, mode })).rejects.toMatchObject({ code: 'internal', message: expect.stringContaining('past end of buffer') });
    await stillWorks();
  });
  it('an unknown task is an internal error, not a hang', async () => {
    expect(await codeOf('no_such_task')).toBe('internal');
  });
  it('a task needing a native decoder runs in a child process', async () => {
    const { pid } = await runSandboxed<{ pid: number }>('selftest_native', null, { limits, mode });
    expect(pid).not.toBe(process.pid);
  });
});

// process.abort() in a worker thread would end this very process (it is one process): native code, the only
// way to such a crash, is refused in worker threads, so the crash case exists for the child process only.
describe('runSandboxed (process only)', () => {
  it('a native crash becomes worker_crashed', async () => {
    await expect(runSandboxed('selftest_crash', null, { limits })).rejects.toMatchObject({ code: 'worker_crashed' });
    expect(await runSandboxed<number[]>('selftest_echo', [3], { limits })).toEqual([3]);
  });
});
