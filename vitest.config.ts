import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // scripts/bench/ and scripts/release/ keep their tests beside the tooling they test.
    include: ['test/**/*.test.ts', 'scripts/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
