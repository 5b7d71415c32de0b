import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Faults and load on real PostgreSQL servers and real processes (`npm run test:faults`): each
 * file starts servers of its own. Files run one after another so the kill timings and the soak's
 * memory figures are not disturbed by another file's load.
 */
export default defineConfig({
  resolve: {
    alias: { 'meter-sync': fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
  test: {
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // node-postgres deprecates queueing a query on a busy connection (gone in pg 9): a test that
    // makes the library do so fails.
    execArgv: ['--throw-deprecation'],
    fileParallelism: false,
  },
});
