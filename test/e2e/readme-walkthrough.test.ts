// The README's own steps work as written. Every ```sh block preceded by
// `<!-- walkthrough: <name> -->` is taken from README.md itself and run with bash, in README
// order, in a fresh copy of the checkout (built there by the README's own `npm start` or by
// `npm run build`), as a new user would run them. A block named `*-server` is a server: it runs in
// the background until the next server block or the end, and the blocks after it talk to it.
//
// The substitutions that keep it on 127.0.0.1 (nothing else is changed):
// - servers get FERRY_LISTEN=127.0.0.1:<free port>, and `localhost:5000` in blocks reads `localhost:<port>`;
// - the upstream URLs `https://gcr.io` and `https://registry-1.docker.io` are a local CNCF
//   distribution seeded with the images the blocks pull, and `/var/lib/ferry` is a folder of the copy;
// - `app.tar`, the image archive the README asks the reader to bring, is built with umoci.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import bcrypt from 'bcryptjs'
import t from 'tap'
import { cleanEnv, copyCheckout, projectRoot } from '../helpers/checkout.js'
import { distributionUnavailable, freePort, startDistribution } from '../helpers/distribution.js'
import { buildImage, initLayout } from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

interface WalkthroughBlock {
  name: string
  code: string
}

/** The marked ```sh blocks of a Markdown text, in order, with list indentation removed. */
function walkthroughBlocks(markdown: string): WalkthroughBlock[] {
  const blocks: WalkthroughBlock[] = []
  const marked = /^([ \t]*)<!-- walkthrough: ([\w-]+) -->[ \t]*\n(?:[ \t]*\n)*[ \t]*```(?:sh|bash)[ \t]*\n([\s\S]*?)\n[ \t]*```/gm
  for (const match of markdown.matchAll(marked)) {
    const indent = match[1]!.length
    const code = match[3]!
      .split('\n')
      .map((line) => line.slice(Math.min(indent, line.length - line.trimStart().length)))
      .join('\n')
    blocks.push({ name: match[2]!, code })
  }
  return blocks
}

// The blocks this test knows how to check; removing a marker from the README fails it.
const expected = ['try-it-server', 'try-it', 'mirroring-server', 'mirroring', 'robot', 'tls-certs', 'tls-server', 'tls']

const tools = ['skopeo', 'umoci', 'htpasswd', 'openssl', 'curl', 'bash']
const unavailable = missingTools(...tools).length > 0 ? `needs ${missingTools(...tools).join(', ')}` : distributionUnavailable()

/**
 * Whether the line saying this server started on `port` has been printed. A bare connect is not
 * enough: on a busy machine another test may take the probed port before `npm start` has built,
 * and its server would answer in Ferry's place.
 */
function startedOn(output: string, port: number): boolean {
  return output.split('\n').some((line) => line.includes('ferry started') && line.includes(`:${port}`))
}

const portTaken = /EADDRINUSE|address (already )?in use/i

interface Server {
  child: ChildProcess
  output(): string
  stop(): Promise<void>
}

// A process group of its own, so that stopping it stops whatever the block started (npm, ferry).
function startServer(code: string, cwd: string, env: NodeJS.ProcessEnv): Server {
  const child = spawn('bash', ['-euo', 'pipefail', '-c', code], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal)
    } catch {
      // Already gone.
    }
  }
  const killOnExit = (): void => signalGroup('SIGKILL')
  process.once('exit', killOnExit)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return {
    child,
    output: () => output,
    stop: async () => {
      signalGroup('SIGTERM')
      const timer = setTimeout(() => signalGroup('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
      process.removeListener('exit', killOnExit)
    },
  }
}

t.test('the README walkthrough', { skip: unavailable }, async (t) => {
  const readme = await readFile(join(projectRoot, 'README.md'), 'utf8')
  const blocks = walkthroughBlocks(readme)
  t.same(
    expected.filter((name) => !blocks.some((b) => b.name === name)),
    [],
    'every walkthrough block is still marked in README.md',
  )

  const dir = await mkdtemp(join(tmpdir(), 'ferry-walkthrough-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const checkout = await copyCheckout(join(dir, 'checkout'))

  // What the reader brings: an image archive, and upstream registries holding what they pull.
  const layout = join(dir, 'layout')
  await initLayout(layout)
  await mkdir(join(dir, 'scratch'))
  await buildImage(layout, '1.0', { layerSizes: [64 * 1024], architecture: 'amd64' }, join(dir, 'scratch'))
  await run('skopeo', ['copy', `oci:${layout}:1.0`, `docker-archive:${join(checkout, 'app.tar')}`])
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  for (const image of ['distroless/static:nonroot', 'library/alpine:3.20']) {
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:1.0`, `docker://${upstream.host}/${image}`])
  }

  let port = await freePort()
  const substitute = (code: string): string =>
    code
      .replaceAll('localhost:5000', `localhost:${port}`)
      .replaceAll('=https://gcr.io', `=${upstream.url}`)
      .replaceAll('=https://registry-1.docker.io', `=${upstream.url}`)
      .replaceAll('/var/lib/ferry', './mirror-data')

  let server: Server | undefined
  t.teardown(() => server?.stop())
  const outputs = new Map<string, string>()
  for (const block of blocks) {
    const code = substitute(block.code)
    if (block.name.endsWith('-server')) {
      await server?.stop()
      const deadline = Date.now() + 180_000 // `npm start` builds first
      for (let attempt = 1; ; attempt++) {
        const started = startServer(substitute(block.code), checkout, cleanEnv({ FERRY_LISTEN: `127.0.0.1:${port}` }))
        server = started
        while (!startedOn(started.output(), port) && started.child.exitCode === null && started.child.signalCode === null) {
          if (Date.now() > deadline) break
          await new Promise((resolve) => setTimeout(resolve, 200))
        }
        if (startedOn(started.output(), port)) break
        // The probed port went to another process meanwhile: try another, a few times.
        if (portTaken.test(started.output()) && attempt < 3 && Date.now() < deadline) {
          await started.stop()
          port = await freePort()
          continue
        }
        throw new Error(`README block ${block.name} did not start a server on ${port}:\n${code}\n--- output ---\n${started.output()}`)
      }
      t.pass(`${block.name}: serving`)
      continue
    }
    try {
      const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', code], { cwd: checkout, env: cleanEnv(), timeoutMs: 120_000 })
      outputs.set(block.name, stdout)
      t.pass(`${block.name}: every command succeeded`)
    } catch (err) {
      t.fail(`README block ${block.name} failed:\n${code}\n${(err as Error).message}\n--- server output ---\n${server?.output() ?? ''}`)
      return
    }
  }

  t.match(outputs.get('try-it'), /"Digest":\s*"sha256:[0-9a-f]{64}"/, 'try it: the pushed image inspects')
  t.match(outputs.get('try-it'), /\{"name":"team\/app","tags":\["1\.0"\]\}/, 'try it: curl lists the pushed tag')
  t.equal(outputs.get('mirroring')?.match(/"Digest"/g)?.length, 3, 'mirroring: all three names resolve through the upstreams')
  const htpasswd = join(checkout, 'users.htpasswd')
  t.equal((await stat(htpasswd)).mode & 0o777, 0o600, 'robot: the htpasswd file is mode 0600')
  const secret = (await readFile(join(checkout, 'ci-robot.secret'), 'utf8')).trim()
  const line = (await readFile(htpasswd, 'utf8')).split('\n').find((l) => l.startsWith('ci-robot:'))
  t.ok(line && (await bcrypt.compare(secret, line.slice('ci-robot:'.length))), 'robot: the printed secret is the account password')
  t.equal(outputs.get('tls')?.trim(), '{}', 'tls: curl trusts the private CA and reaches /v2/')
})
