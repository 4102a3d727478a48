#!/usr/bin/env node
// Builds native/*.c (sendfile.c and its loops) into dist/native/ferry-sendfile.node (part of `npm run build`). It
// is a plain N-API module, so one C compiler call against Node's own headers builds it: no
// node-gyp, no Python, no download. Without a compiler or headers Ferry still works: it sends
// blobs through JavaScript buffers instead (slower), and this script says so without failing
// the build.
//
// `--prebuild` writes the release copy instead, where the loader looks first (the layout of
// node-gyp-build and prebuildify): prebuilds/linux-<arch>/ferry-sendfile.napi.<libc>.node. An
// N-API module runs on every Node version that has its N-API level, so one file per platform,
// architecture and C library serves them all; a release package carries it and needs no compiler.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const native = join(root, 'native')
const files = readdirSync(native).map((name) => join(native, name))
const sources = files.filter((file) => file.endsWith('.c'))
const prebuild = process.argv.includes('--prebuild')
// glibc reports its version in Node's diagnostic report; musl (Alpine) does not.
const libc = process.report?.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl'
const output = prebuild
  ? join(root, 'prebuilds', `${process.platform}-${process.arch}`, `ferry-sendfile.napi.${libc}.node`)
  : join(root, 'dist', 'native', 'ferry-sendfile.node')

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
const newest = Math.max(...files.map((file) => statSync(file).mtimeMs))
if (!prebuild && existsSync(output) && statSync(output).mtimeMs >= newest) process.exit(0)

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
  // 64-bit file offsets on 32-bit platforms too: blobs past 2 GiB (the source asserts it).
  '-D_FILE_OFFSET_BITS=64',
  `-I${headers}`,
  ...sources,
  '-o',
  output,
]
const result = spawnSync(compiler, args, { stdio: 'inherit' })
if (result.error) skip(`cannot run ${compiler} (${result.error.message})`)
if (result.status !== 0) skip(`${compiler} failed (exit ${result.status})`)
if (prebuild) console.error(`build-native: wrote ${output}`)
