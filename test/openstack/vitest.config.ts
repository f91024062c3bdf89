import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

// `npm run test:openstack`: the suite against the real OpenStack of test/openstack/fixture (run.sh
// starts it). One file at a time: they share one small cloud on a small machine.
export default defineConfig({
  root: resolve(import.meta.dirname, '..', '..'),
  test: {
    include: ['test/openstack/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
