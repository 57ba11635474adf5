import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Suites start real servers and real clients; two cores: run files two at a time.
    maxWorkers: 2,
  },
});
