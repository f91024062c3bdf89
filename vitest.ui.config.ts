import { defineConfig } from 'vitest/config';

/** `npm run test:ui`: the live view in a real browser (Debian's chromium), apart from `npm test`. */
export default defineConfig({
  test: {
    include: ['test/**/*.browser.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
    minWorkers: 1,
  },
});
