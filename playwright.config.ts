import { defineConfig } from '@playwright/test'
import { testPorts } from './demo-sites/e2e/fixtures.ts'
import { E2E_LOG_FILE } from './demo-sites/e2e/log-check.ts'

const dataDir = '.e2e-data'

export default defineConfig({
  testDir: 'demo-sites/e2e',
  testMatch: '*.spec.ts',
  // One server, one store: specs run one at a time so newest-wins in one cannot touch another.
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: process.env.CI ? 1 : 0,
  timeout: 30_000,
  expect: { timeout: 5_000 },
  reporter: [['list'], ['json', { outputFile: 'reports/e2e.json' }]],
  use: { trace: 'retain-on-failure' },
  projects: [
    { name: '3pc-blocked', use: { thirdPartyCookies: 'blocked' } as Record<string, unknown> },
    {
      name: '3pc-allowed',
      use: { thirdPartyCookies: 'allowed' } as Record<string, unknown>,
      // Once is enough where the cookie mode changes nothing (the operator's console, metrics, the
      // server-side scale-out), and FedCM is about the blocked mode: these run in 3pc-blocked only.
      testIgnore: [
        'cluster.spec.ts',
        'fedcm.spec.ts',
        'console.spec.ts',
        'metrics.spec.ts',
        'refresh-now.spec.ts',
      ],
    },
  ],
  // After the whole run: the passport's log holds no password, token or credential (issue 19).
  globalTeardown: './demo-sites/e2e/log-check.ts',
  webServer: {
    command: `rm -rf ${dataDir} .e2e-logs && node demo-sites/start.ts`,
    url: `http://127.0.0.1:${testPorts.passport}/`,
    reuseExistingServer: false,
    timeout: 30_000,
    env: {
      PASSPORT_PORT: String(testPorts.passport),
      NEWS_PORT: String(testPorts.news),
      SHOP_PORT: String(testPorts.shop),
      EVIL_PORT: String(testPorts.evil),
      DOCS_PORT: String(testPorts.docs),
      PASSPORT_DATA_DIR: dataDir,
      PASSPORT_QUIET: '1',
      // The demo users' SCRAM credentials at a test cost: each browser sign-in derives the key
      // with PBKDF2 in the page, and 600,000 iterations take seconds on a loaded CI machine.
      PASSPORT_SCRAM_ITERATIONS: process.env.PASSPORT_SCRAM_ITERATIONS ?? '10000',
      PASSPORT_MANAGEMENT_PORT: String(testPorts.management),
      // Quiet on the console, but every line kept for the log check after the run.
      PASSPORT_LOG_FILE: E2E_LOG_FILE,
    },
  },
})
