import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from './fixtures/fake-io.js'

const argv = (...args: string[]) => ['node', 'ferry', ...args]

t.test('config check accepts a valid file', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'listen: ":6000"\n' }), 'ferry.yaml')
  const fake = fakeIo()
  await runCli(argv('config', 'check', file), fake.io)
  t.equal(fake.stdout(), `config ok: ${file}\n`)
  t.equal(fake.stderr(), '')
  t.same(fake.exits, [], 'exits normally (status 0)')
})

t.test('config check reports an invalid file with status 2', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'storage:\n  uploads:\n    maxAge: soon\n' }), 'ferry.yaml')
  const fake = fakeIo()
  await runCli(argv('config', 'check', file), fake.io)
  t.equal(
    fake.stderr(),
    `ferry: config error in ${file}:3 at storage.uploads.maxAge: expected a duration like "24h", "30s" or "500ms", got "soon"\n`,
  )
  t.equal(fake.stdout(), '')
  t.same(fake.exits, [2])
})

t.test('config check applies environment overrides', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'log:\n  level: info\n' }), 'ferry.yaml')
  const fake = fakeIo({ FERRY_LOG_LEVEL: 'chatty' })
  await runCli(argv('config', 'check', file), fake.io)
  t.match(fake.stderr(), /^ferry: config error at log\.level \(from FERRY_LOG_LEVEL\): expected one of/)
  t.same(fake.exits, [2])
})

t.test('config check warns about an unknown FERRY_ variable and ignores service links', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'log:\n  level: info\n' }), 'ferry.yaml')
  const fake = fakeIo({ FERRY_LISTN: ':6000', FERRY_PORT: 'tcp://10.96.0.12:5000', FERRY_SERVICE_HOST: '10.96.0.12' })
  await runCli(argv('config', 'check', file), fake.io)
  t.equal(fake.stderr(), 'ferry: warning: unknown environment variable FERRY_LISTN ignored (did you mean FERRY_LISTEN?)\n')
  t.equal(fake.stdout(), `config ok: ${file}\n`)
  t.same(fake.exits, [])
})

t.test('config check of a missing or malformed file', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'a: [\n' })
  const missing = fakeIo()
  await runCli(argv('config', 'check', join(dir, 'nope.yaml')), missing.io)
  t.equal(missing.stderr(), `ferry: config error: cannot read ${join(dir, 'nope.yaml')}: no such file\n`)
  t.same(missing.exits, [2])
  const bad = fakeIo()
  await runCli(argv('config', 'check', join(dir, 'bad.yaml')), bad.io)
  t.match(bad.stderr(), `ferry: config error in ${join(dir, 'bad.yaml')}:2:`)
  t.same(bad.exits, [2])
})

t.test('config check without a file is a usage error', async (t) => {
  const fake = fakeIo()
  await runCli(argv('config', 'check'), fake.io)
  t.match(fake.stderr(), /missing required argument 'file'/)
  t.same(fake.exits, [1])
})

t.test('config print shows the effective config: file < env < flags', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'listen: ":1000"\nlog:\n  level: warn\nhttp:\n  idleTimeout: 2m\n' }), 'ferry.yaml')
  const fake = fakeIo({ FERRY_LOG_LEVEL: 'error', FERRY_LISTEN: ':2000' })
  await runCli(argv('config', 'print', file, '--listen', '127.0.0.1:3000'), fake.io)
  t.same(fake.exits, [])
  const printed = parse(fake.stdout()) as Record<string, Record<string, unknown>>
  t.equal(printed.listen, '127.0.0.1:3000')
  t.same(printed.log, { level: 'error', format: 'auto' })
  t.same(printed.http, { idleTimeout: '2m', shutdownTimeout: '30s', sendfile: true })
  t.same(printed.cache, { manifestMemory: '64MiB', metadataTtl: '5s', maxSize: 0, lowWatermark: '90%', upstreams: [] })
})

t.test('config print reads FERRY_CONFIG when no file is given', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'storage:\n  filesystem:\n    path: /from-file\n' }), 'ferry.yaml')
  const fake = fakeIo({ FERRY_CONFIG: file })
  await runCli(argv('config', 'print'), fake.io)
  t.match(fake.stdout(), /path: \/from-file/)
})
