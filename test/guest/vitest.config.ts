import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:guest` (after test/guest/prepare.sh): real systemd-nspawn guests with systemd and
// cloud-init. One file at a time and one test at a time: every guest boots a whole OS on two cores.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/guest/**/*.test.ts'],
    fileParallelism: false,
    maxWorkers: 1,
    minWorkers: 1,
    testTimeout: 600_000,
    hookTimeout: 300_000,
  },
});
