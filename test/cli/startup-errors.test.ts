// Start-up failures an operator fixes with one setting read as one sentence on stderr naming the
// setting, its flag and its variable, with a non-zero exit and no stack trace: through the real
// CLI process (run-ferry.ts under tsx, as ferry-process.ts runs it).
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'

const entry = fileURLToPath(new URL('../helpers/run-ferry.ts', import.meta.url))
const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

interface Outcome {
  code: number | null
  stdout: string
  stderr: string
}

function ferry(args: string[]): Promise<Outcome> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.toUpperCase().startsWith('FERRY_')) env[k] = v
  const child = spawn(process.execPath, ['--import', 'tsx', entry, 'serve', ...args], {
    cwd: projectRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  // A server that started after all must not outlive the test.
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function assertOneSentence(t: Test, outcome: Outcome, expected: RegExp): void {
  t.equal(outcome.code, 1, 'exits 1')
  t.match(outcome.stderr, expected)
  t.equal(outcome.stderr.trim().split('\n').length, 1, 'one line on stderr')
  t.notMatch(outcome.stderr + outcome.stdout, /\n\s+at |"stack"/, 'no stack trace anywhere')
  t.notMatch(outcome.stdout, /ferry started/)
}

t.test('a busy port', async (t) => {
  const busy = createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => busy.close())
  const { port } = busy.address() as { port: number }
  const outcome = await ferry(['--listen', `127.0.0.1:${port}`, '--storage', t.testdir()])
  assertOneSentence(
    t,
    outcome,
    new RegExp(`^ferry: cannot listen on 127\\.0\\.0\\.1:${port}: address in use \\(set --listen or FERRY_LISTEN\\)\\n$`),
  )
})

t.test('a storage path that cannot be a folder', async (t) => {
  const dir = t.testdir({ file: 'not a folder' })
  for (const path of [join(dir, 'file'), join(dir, 'file', 'store')]) {
    const outcome = await ferry(['--listen', '127.0.0.1:0', '--storage', path])
    assertOneSentence(
      t,
      outcome,
      new RegExp(`^ferry: cannot use storage\\.filesystem\\.path ${path}: .+ \\(set --storage or FERRY_STORAGE_FILESYSTEM_PATH\\)\\n$`),
    )
  }
})

t.test('TLS files that are missing, unreadable or do not match', { skip: pkiUnavailable() ?? false }, async (t) => {
  const dir = t.testdir()
  const ca = await makeCa(join(dir, 'ca'))
  const a = await issueServerCert(ca, { cn: 'a.test', sans: ['127.0.0.1'] })
  const b = await issueServerCert(ca, { cn: 'b.test', sans: ['127.0.0.1'] })
  const garbage = join(dir, 'garbage.pem')
  await writeFile(garbage, 'not PEM at all\n')
  const cases: Array<[string, string[], RegExp]> = [
    [
      'a missing certificate',
      ['--tls-cert', join(dir, 'nope.pem'), '--tls-key', a.keyPath],
      /tls\.cert .* \(set --tls-cert or FERRY_TLS_CERT\)/,
    ],
    ['a folder as the key', ['--tls-cert', a.certPath, '--tls-key', dir], /tls\.key .* \(set --tls-key or FERRY_TLS_KEY\)/],
    ['a key that is not PEM', ['--tls-cert', a.certPath, '--tls-key', garbage], /tls\.key .* \(set --tls-key or FERRY_TLS_KEY\)/],
    [
      'a key of another certificate',
      ['--tls-cert', a.certPath, '--tls-key', b.keyPath],
      /tls\.key .*does not match.* \(set --tls-key or FERRY_TLS_KEY\)/,
    ],
  ]
  for (const [what, flags, expected] of cases) {
    t.test(what, async (t) => {
      const outcome = await ferry(['--listen', '127.0.0.1:0', '--storage', join(dir, 'store'), ...flags])
      assertOneSentence(t, outcome, /^ferry: cannot serve HTTPS: /)
      t.match(outcome.stderr, expected)
    })
  }
})
