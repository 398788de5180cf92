/** A child started ahead of time is taken by the next matching call, and never keeps its caller alive. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveLimits } from '../../core/limits.ts';
import { prestartSandbox, runSandboxed } from '../../io/sandbox.ts';

beforeAll(() => {
  process.env.GATEDVISION_SANDBOX_SELFTEST = '1';
});

const limits = resolveLimits({ sandboxTimeoutMs: 20_000, sandboxRssMb: 600, sandboxHeapMb: 256 });

describe('prestartSandbox', () => {
  it('the next call runs in the prestarted child, the one after in a fresh one', async () => {
    prestartSandbox('load', limits);
    // the prestarted child was forked with its task as argument; a fresh one has none
    expect(await runSandboxed<string[]>('selftest_argv', null, { limits })).toEqual(['load']);
    expect(await runSandboxed<string[]>('selftest_argv', null, { limits })).toEqual([]);
  });
  it('a call with another heap cap does not take it', async () => {
    prestartSandbox('load', limits);
    expect(await runSandboxed<string[]>('selftest_argv', null, { limits: { ...limits, sandboxHeapMb: 300 } })).toEqual([]);
    // it was dropped, not kept for later
    expect(await runSandboxed<string[]>('selftest_argv', null, { limits })).toEqual([]);
  });
  it('a worker thread started ahead is taken the same way', async () => {
    prestartSandbox('load', limits, 'worker');
    expect(await runSandboxed<string[]>('selftest_argv', null, { limits, mode: 'worker' })).toEqual(['load']);
    expect(await runSandboxed<string[]>('selftest_argv', null, { limits, mode: 'worker' })).toEqual([]);
  });
  it.each(['process', 'worker'])('an unused prestarted %s does not keep its caller alive', (mode) => {
    const root = join(import.meta.dirname, '..', '..');
    const script = `
      import { prestartSandbox } from './io/sandbox.ts';
      prestartSandbox('convert', undefined, '${mode}');
      setTimeout(() => console.log('done'), 300);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('done');
  });
});
