import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    // The browser test has its own command (npm run test:ui): it needs Debian's chromium; test/guest
    // boots real machines as root (npm run test:guest); test/openstack needs a real OpenStack (npm
    // run test:openstack); test/redis needs Debian's redis-server (npm run test:redis). None is
    // part of the fast suite.
    exclude: ['**/node_modules/**', '**/dist/**', '**/*.browser.test.ts', 'test/guest/**', 'test/openstack/**', 'test/redis/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The suites start real servers and real child processes: keep the 2-core machine unsaturated.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
