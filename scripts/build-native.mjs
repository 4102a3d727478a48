#!/usr/bin/env node
// Builds native/sendfile.c into dist/native/<platform>-<arch>/ferry-sendfile.node (part of
// `npm run build`, so `npm pack` ships it for the packing machine's platform, as prebuildify
// does). It is a plain N-API module, so one C compiler call against Node's own headers builds it:
// no node-gyp, no Python, no download. The package has no install script (npm blocks those of
// unreviewed packages): on another platform, run this script once in the installed package.
// Without a compiler or headers Ferry still works: it sends blobs through JavaScript buffers
// instead (slower), and this script says so without failing the build.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const source = join(root, 'native', 'sendfile.c')
const output = join(root, 'dist', 'native', `${process.platform}-${process.arch}`, 'ferry-sendfile.node')

function skip(reason) {
  console.error(`build-native: ${reason}; Ferry will send blobs without sendfile(2)`)
  process.exit(0)
}

if (process.platform !== 'linux') skip(`sendfile(2) is used on Linux only (this is ${process.platform})`)
const headerDirs = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter(Boolean)
const headers = headerDirs.find((dir) => existsSync(join(dir, 'node_api.h')))
if (!headers) skip(`no node_api.h in ${headerDirs.join(', ')}`)
if (existsSync(output) && statSync(output).mtimeMs >= statSync(source).mtimeMs) process.exit(0)

mkdirSync(dirname(output), { recursive: true })
const compiler = process.env.CC || 'cc'
const args = [
  '-O2',
  '-std=gnu11',
  '-Wall',
  '-Wextra',
  '-Wno-unused-parameter',
  '-fPIC',
  '-shared',
  '-pthread',
  `-I${headers}`,
  source,
  '-o',
  output,
]
const result = spawnSync(compiler, args, { stdio: 'inherit' })
if (result.error) skip(`cannot run ${compiler} (${result.error.message})`)
if (result.status !== 0) skip(`${compiler} failed (exit ${result.status})`)
