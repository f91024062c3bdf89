import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { REDIS_MISSING } from '../support/redis-server.js';

// `npm run test:redis`: the Store contract against a real redis-server (one server, and a
// three-master cluster), and kernel suites on a Redis store. Not part of `npm test`: it needs
// Debian's redis-server. Without it the run fails here, in one line (never skipped).
try {
  execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  execFileSync('redis-cli', ['--version'], { stdio: 'ignore' });
} catch {
  console.error(REDIS_MISSING);
  process.exit(1);
}

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    // The kernel suites start kernels on the redis-server of test/redis/global-setup.ts (see
    // test/support/kernel.ts; kernel-process.ts for `rack kernel --store`, killed -9 and restarted).
    include: [
      'test/redis/**/*.test.ts',
      'test/ipc/kernel-ipc.test.ts',
      'test/ipc/durability.test.ts',
      'test/kernel/wait.test.ts',
      'test/kernel/signals.test.ts',
      'test/kernel/quotas.test.ts',
      'test/kernel/process-tree.test.ts',
      'test/kernel/resend.test.ts',
      'test/kernel/restart.test.ts',
    ],
    globalSetup: ['test/redis/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    maxWorkers: 1,
    minWorkers: 1,
  },
});
