// The npm package runs: `npm pack` of a copy of the checkout (dist/ absent, built by prepack)
// ships dist/ and only what runs, installs into an empty prefix without install scripts, and the
// installed `ferry` answers --version and serves /v2/. `npm start` in that copy stops when npm
// is killed, as a service manager or a shell's `kill <pid>` expects.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanEnv, copyCheckout, projectRoot as root } from '../helpers/checkout.js'
import { freePort } from '../helpers/distribution.js'
import { missingTools, run } from '../helpers/tools.js'

async function serving(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) })
    await res.arrayBuffer()
    return res.status === 200
  } catch {
    return false
  }
}

async function until(what: string, condition: () => Promise<boolean>, output: () => string): Promise<void> {
  // Generous: `npm start` builds first, which takes a minute or more on a loaded 2-core machine.
  const deadline = Date.now() + 240_000
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}\n--- output ---\n${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

function spawnLogged(command: string, args: string[], cwd: string): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const kill = (): void => void child.kill('SIGKILL')
  process.once('exit', kill)
  child.once('exit', () => process.removeListener('exit', kill))
  return { child, output: () => output }
}

/**
 * Starts a server on a probed free port. It counts as up when its own `ferry started` line names
 * the port (another test's server may take a probed port while `npm start` builds, and would
 * answer in its place); a port found taken is replaced, up to 3 times.
 */
async function startOnFreePort(
  start: (port: number) => { child: ChildProcess; output: () => string },
): Promise<{ child: ChildProcess; output: () => string; url: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const server = start(port)
    const startedOn = (): boolean =>
      server
        .output()
        .split('\n')
        .some((line) => line.includes('ferry started') && line.includes(`:${port}`))
    const gone = (): boolean => server.child.exitCode !== null || server.child.signalCode !== null
    await until(`a server started on ${port}`, async () => startedOn() || gone(), server.output)
    if (startedOn()) return { ...server, url: `http://127.0.0.1:${port}` }
    if (attempt >= 3 || !/address (already )?in use|EADDRINUSE/i.test(server.output()))
      throw new Error(`no server started on ${port}\n--- output ---\n${server.output()}`)
  }
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()))

t.test('npm pack → npm install -g → ferry runs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-package-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const checkout = await copyCheckout(join(dir, 'checkout'))
  const version = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }).version

  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { env: cleanEnv(), timeoutMs: 240_000, cwd: checkout })
  const [pack] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>
  const files = pack!.files.map((f) => f.path)
  for (const needed of ['bin/ferry.js', 'dist/cli/main.js', 'config/ferry.example.yaml', 'deploy/systemd/ferry.service', 'README.md']) {
    t.ok(files.includes(needed), `ships ${needed}`)
  }
  // Where node-gyp-build's convention puts it, and where src/transfer/native-sendfile.ts looks first.
  const libc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime
    ? 'glibc'
    : 'musl'
  const nativeHelper = `prebuilds/${process.platform}-${process.arch}/ferry-sendfile.napi.${libc}.node`
  const canBuildNative = process.platform === 'linux' && missingTools('cc').length === 0
  if (canBuildNative) t.ok(files.includes(nativeHelper), `ships the sendfile helper built for this platform (${nativeHelper})`)
  t.same(
    files.filter((f) => /^(test|bench|src)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts')),
    [],
    'no tests, bench, TypeScript sources or source maps',
  )

  const prefix = join(dir, 'prefix')
  const installed = await run(
    'npm',
    ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, join(dir, pack!.filename)],
    { env: cleanEnv(), timeoutMs: 240_000 },
  )
  t.notMatch(installed.stdout + installed.stderr, /install-scripts|not allowed/, 'no install script for npm to block or warn about')
  t.notMatch(installed.stdout + installed.stderr, /EBADENGINE/, 'every dependency supports this Node version')

  if (canBuildNative) {
    const installedHelper = join(prefix, 'lib', 'node_modules', 'ferry-registry', nativeHelper)
    const load = `if (typeof require(${JSON.stringify(installedHelper)}).open !== 'function') process.exit(1)`
    await run(process.execPath, ['-e', load], { env: cleanEnv() })
    t.pass('the shipped sendfile helper loads from the installed package')
  }

  const ferry = join(prefix, 'bin', 'ferry')
  t.equal((await run(ferry, ['--version'], { env: cleanEnv() })).stdout.trim(), version, 'ferry --version')

  const server = await startOnFreePort((port) =>
    spawnLogged(ferry, ['serve', '--listen', `127.0.0.1:${port}`, '--storage', join(dir, 'data')], dir),
  )
  t.teardown(() => void server.child.kill('SIGKILL'))
  const url = server.url
  await until('the installed ferry serves /v2/', () => serving(url), server.output)
  t.pass('GET /v2/ answers 200')
  server.child.kill('SIGTERM')
  await exited(server.child)
  t.equal(server.child.exitCode, 0, 'SIGTERM stops it cleanly')

  // npm start in the same checkout (dist/ was built by prepack): killing npm stops the server.
  const npmStart = await startOnFreePort((port) =>
    spawnLogged('npm', ['start', '--', '--listen', `127.0.0.1:${port}`, '--storage', join(dir, 'data-start')], checkout),
  )
  t.teardown(() => void npmStart.child.kill('SIGKILL'))
  const startUrl = npmStart.url
  await until('npm start serves /v2/', () => serving(startUrl), npmStart.output)
  npmStart.child.kill('SIGTERM')
  await exited(npmStart.child)
  await until('the server behind npm start has stopped', async () => !(await serving(startUrl)), npmStart.output)
  t.match(npmStart.output(), /stopped/, 'the server shut down gracefully')
})
