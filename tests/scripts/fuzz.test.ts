/**
 * A small seeded mutation-fuzz run through the whole sandboxed loader (each input its own child process):
 * every input ends in a typed outcome, no decoder crash escapes as an untyped error, nothing hangs.
 * Bigger runs: `npx tsx scripts/fuzz.ts --count 5000 --seed N`.
 */
import { describe, expect, it } from 'vitest';
import { fuzz, mutate, rng } from '../../scripts/fuzz.ts';

describe('mutation fuzz (CI size)', () => {
  it('mutations are deterministic for a seed and actually change the input', () => {
    const src = new Uint8Array(4096).map((_, i) => i & 0xff);
    const a = mutate(src, rng(42));
    const b = mutate(src, rng(42));
    expect(a.name).toBe(b.name);
    expect(Buffer.compare(Buffer.from(a.bytes), Buffer.from(b.bytes))).toBe(0);
    let changed = 0;
    const r = rng(7);
    for (let i = 0; i < 50; i++) if (Buffer.compare(Buffer.from(mutate(src, r).bytes), Buffer.from(src)) !== 0) changed++;
    expect(changed).toBeGreaterThan(40);
  });

  it('60 mutated inputs: every one typed, none crashed the caller, none hung', async () => {
    const report = await fuzz({ count: 60, seed: Number(process.env.GATEDVISION_FUZZ_SEED ?? 20261128) });
    const total = Object.values(report.byOutcome).reduce((a, b) => a + b, 0);
    expect(total).toBe(60);
    expect(report.untyped, JSON.stringify(report.untyped)).toEqual([]);
    expect(report.crashed.filter((c) => c.outcome === 'timeout'), JSON.stringify(report.crashed)).toEqual([]);
    // most mutations of a valid file are still readable or cleanly rejected; at least two kinds of outcome
    expect(Object.keys(report.byOutcome).length).toBeGreaterThan(1);
  }, 240_000);
});
