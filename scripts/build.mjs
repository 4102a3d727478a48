#!/usr/bin/env node
// `npm run build` (and so `npm start`, `npm test`): compiles src/ into dist/ with tsc, then the
// native sendfile helper. tsc is skipped when every src/**/*.ts already has its dist/**/*.js at
// least as new as it and as the tsconfig files, so restarting `npm start` does not recompile the
// whole project (13 CPU-s here). A missing or older output compiles everything, as before;
// `--force` always does. tsc's own `incremental` mode was not used: it does not re-emit an output
// file that was deleted, and `npm run build` must repair a dist/ that lost a file.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const src = join(root, 'src')
const dist = join(root, 'dist')

function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* sources(path)
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path
  }
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs
  } catch {
    return undefined
  }
}

function upToDate() {
  const configs = ['tsconfig.json', 'tsconfig.build.json'].map((name) => mtime(join(root, name)) ?? Infinity)
  const newestConfig = Math.max(...configs)
  for (const source of sources(src)) {
    const output = mtime(join(dist, relative(src, source)).replace(/\.ts$/, '.js'))
    if (output === undefined || output < Math.max(mtime(source) ?? Infinity, newestConfig)) return false
  }
  return true
}

function run(command, args) {
  const result = spawnSync(command, args, { stdio: 'inherit', cwd: root })
  if (result.error) throw result.error
  if (result.status !== 0) process.exit(result.status ?? 1)
}

if (process.argv.includes('--force') || !upToDate()) {
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'])
}
run(process.execPath, [join(root, 'scripts', 'build-native.mjs')])
