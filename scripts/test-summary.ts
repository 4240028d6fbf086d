import { readFileSync } from 'node:fs'

// One closing line for CI over both runners: "N passed, N failed".
const read = (file: string) => JSON.parse(readFileSync(file, 'utf8'))
const unit = read('reports/unit.json')
const e2e = read('reports/e2e.json')
const passed = unit.numPassedTests + e2e.stats.expected + e2e.stats.flaky
const failed = unit.numFailedTests + e2e.stats.unexpected
const skipped = unit.numPendingTests + unit.numTodoTests + e2e.stats.skipped
console.log(
  `unit: ${unit.numPassedTests} passed; browser: ${e2e.stats.expected} passed, ${e2e.stats.flaky} flaky`,
)
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
process.exit(failed > 0 || passed === 0 ? 1 : 0)
