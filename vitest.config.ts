import { defineConfig } from 'vitest/config'

// Unit and integration tests (*.test.ts beside the code). Browser specs are *.spec.ts (Playwright).
export default defineConfig({
  test: {
    include: [
      'passport-server/**/*.test.ts',
      'passport-frame/**/*.test.ts',
      'demo-sites/**/*.test.ts',
      'bench/**/*.test.ts',
    ],
    environment: 'node',
    reporters: ['default', 'json'],
    outputFile: { json: 'reports/unit.json' },
    testTimeout: 20_000,
  },
})
