import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Readers spawn sandboxed children and oracles; keep parallelism modest on a 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
    // generous: SwiftShader compiles every WGSL variant on the CPU, and CI machines are shared; no test asserts speed
    testTimeout: 180_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
