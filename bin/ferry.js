#!/usr/bin/env node
// Thin launcher for the compiled CLI (npm run build produces dist/; the npm package ships it).
import { existsSync } from 'node:fs'

const main = new URL('../dist/cli/main.js', import.meta.url)
if (!existsSync(main)) {
  // A fresh clone: say what to run rather than fail with ERR_MODULE_NOT_FOUND.
  process.stderr.write(`ferry: ${main.pathname} is missing: run \`npm run build\` (or \`npm start\`) in the checkout first\n`)
  process.exit(1)
}
// Before any other import: V8's young generation stays small while the modules load (#18).
const { holdYoungGeneration } = await import(new URL('../dist/cli/young-generation.js', import.meta.url).href)
const releaseYoungGeneration = holdYoungGeneration(process.execArgv)
const { runCli } = await import(main.href)
await runCli(process.argv, undefined, { releaseYoungGeneration })
