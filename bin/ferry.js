#!/usr/bin/env node
// Thin launcher for the compiled CLI (npm run build produces dist/).
import { runCli } from '../dist/cli/main.js'

await runCli(process.argv)
