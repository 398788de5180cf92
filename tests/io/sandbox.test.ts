/** The sandbox contains crashes, hangs, runaway memory and odd throws as typed errors; the caller lives on. */
import { beforeAll, describe, expect, it } from 'vitest';
import { GatedError } from '../../core/errors.ts';
import { resolveLimits } from '../../core/limits.ts';
import { runSandboxed } from '../../io/sandbox.ts';

beforeAll(() => {
  process.env.GATEDVISION_SANDBOX_SELFTEST = '1';
});

const limits = resolveLimits({ sandboxTimeoutMs: 8_000, sandboxRssMb: 600, sandboxHeapMb: 256 });

async function codeOf(task: string, l = limits): Promise<string> {
  try {
    await runSandboxed(task, null, { limits: l });
    return 'resolved';
  } catch (e) {
    expect(e).toBeInstanceOf(GatedError);
    return (e as GatedError).code;
  }
}

describe('runSandboxed', () => {
  it('returns typed arrays intact', async () => {
    const payload = { a: new Int16Array([-3, 7, 32767]), b: new Float64Array([Math.PI]) };
    const out = await runSandboxed<typeof payload>('selftest_echo', payload, { limits });
    expect(out.a).toBeInstanceOf(Int16Array);
    expect(Array.from(out.a)).toEqual([-3, 7, 32767]);
    expect(out.b[0]).toBe(Math.PI);
  });
  it('a hang becomes timeout', async () => {
    const t0 = Date.now();
    expect(await codeOf('selftest_hang', { ...limits, sandboxTimeoutMs: 1500 })).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(5000);
  });
  it('a native crash becomes worker_crashed', async () => {
    expect(await codeOf('selftest_crash')).toBe('worker_crashed');
  });
  it('runaway buffer allocation is stopped by the RSS watchdog as too_large', async () => {
    expect(await codeOf('selftest_alloc')).toBe('too_large');
  });
  it('a thrown string comes back as a GatedError with its message', async () => {
    await expect(runSandboxed('selftest_throw', null, { limits })).rejects.toMatchObject({ code: 'internal', message: expect.stringContaining('past end of buffer') });
  });
  it('an unknown task is an internal error, not a hang', async () => {
    expect(await codeOf('no_such_task')).toBe('internal');
  });
});
