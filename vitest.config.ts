import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One Temporal dev server and one workflow bundle for the whole run (test/support/global-setup.ts).
    globalSetup: ['test/support/global-setup.ts'],
    // Temporal's native bridge belongs in a process of its own, not a worker thread.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
