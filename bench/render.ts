import fs from 'node:fs'
import path from 'node:path'
import { tokensMarkdown } from './tokens.ts'

/**
 * `node bench/render.ts tokens[-tag]`: writes `bench/results/<name>.md` again from its `.json`
 * (after a change to the wording of the table notes; the figures are the run's).
 */
const name = process.argv[2] ?? 'tokens'
if (!name.startsWith('tokens')) throw new Error('only the tokens results can be rendered again')
const file = path.join(import.meta.dirname, 'results', `${name}.json`)
const { meta, ...result } = JSON.parse(fs.readFileSync(file, 'utf8'))
fs.writeFileSync(file.replace(/\.json$/, '.md'), tokensMarkdown(result, meta))
