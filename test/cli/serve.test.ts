import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import type { RunningServer, StartServer } from '../../src/cli/serve.js'
import type { Config } from '../../src/config/schema.js'
import { fakeIo } from './fixtures/fake-io.js'

const argv = (...args: string[]) => ['node', 'ferry', ...args]
const tick = () => new Promise((resolve) => setImmediate(resolve))

// A startServer that records what it was given; close() settles when the test says so.
function fakeServer(options: { closes?: boolean } = {}) {
  const started: Config[] = []
  let closeCalls = 0
  const startServer: StartServer = async (config) => {
    started.push(config)
    const server: RunningServer = {
      url: `http://127.0.0.1:${config.listen.port}`,
      close: () => {
        closeCalls++
        return options.closes === false ? new Promise<void>(() => {}) : Promise.resolve()
      },
    }
    return server
  }
  return { startServer, started, closeCalls: () => closeCalls }
}

t.test('serve is the default command and loads file < env < flags', async (t) => {
  const file = join(
    t.testdir({ 'ferry.yaml': 'listen: ":1000"\nlog:\n  level: warn\nstorage:\n  filesystem:\n    path: /file\n' }),
    'ferry.yaml',
  )
  const fake = fakeIo({ FERRY_CONFIG: file, FERRY_LOG_LEVEL: 'info' })
  const server = fakeServer()
  await runCli(argv('--storage', '/flag'), fake.io, server)
  const [config] = server.started
  t.equal(config?.listen.port, 1000, 'from the file named by FERRY_CONFIG')
  t.equal(config?.log.level, 'info', 'env beats the file')
  t.equal(config?.storage.filesystem.path, '/flag', 'flags beat env')

  const explicit = fakeIo({ FERRY_LISTEN: ':2000' })
  await runCli(argv('serve', '--config', file, '--listen', ':3000', '--log-level', 'debug'), explicit.io, server)
  t.equal(server.started[1]?.listen.port, 3000)
  t.equal(server.started[1]?.log.level, 'debug')
})

t.test('SIGTERM closes the server once and exits 0', async (t) => {
  const fake = fakeIo()
  const server = fakeServer()
  await runCli(argv('serve', '--listen', ':0'), fake.io, server)
  t.same(fake.exits, [], 'keeps running')
  const started = fake.logs().find((l) => l.msg === 'ferry started')
  t.match(started, { name: 'ferry', url: 'http://127.0.0.1:0', level: 30 })
  t.match(String(started?.time), /^\d{4}-\d\d-\d\dT/, 'ISO timestamps')

  fake.signal('SIGTERM')
  await tick()
  t.equal(server.closeCalls(), 1)
  t.same(fake.exits, [0])
  t.match(
    fake.logs().find((l) => l.msg === 'shutting down'),
    { signal: 'SIGTERM' },
  )
})

t.test('a second signal forces exit 1 while closing', async (t) => {
  const fake = fakeIo()
  const server = fakeServer({ closes: false })
  await runCli(argv('serve'), fake.io, server)
  fake.signal('SIGINT')
  await tick()
  t.same(fake.exits, [])
  fake.signal('SIGTERM')
  t.equal(server.closeCalls(), 1, 'close is called only once')
  t.same(fake.exits, [1])
})

t.test('an invalid config exits 2 with one line and no stack', async (t) => {
  const fake = fakeIo({ FERRY_HTTP_IDLE_TIMEOUT: 'soon' })
  const server = fakeServer()
  await runCli(argv('serve'), fake.io, server)
  t.equal(
    fake.stderr(),
    'ferry: config error at http.idleTimeout (from FERRY_HTTP_IDLE_TIMEOUT): expected a duration like "24h", "30s" or "500ms", got "soon"\n',
  )
  t.same(fake.exits, [2])
  t.same(server.started, [], 'the server is not started')
})

t.test('a failing start is logged and exits 1', async (t) => {
  const fake = fakeIo()
  await runCli(argv('serve'), fake.io, {
    startServer: async () => {
      throw new Error('listen EADDRINUSE')
    },
  })
  t.same(fake.exits, [1])
  t.match(
    fake.logs().find((l) => l.msg === 'startup failed'),
    { level: 60, err: { message: 'listen EADDRINUSE' } },
  )
})

t.test('SIGHUP asks the server to reload and keeps it running', async (t) => {
  const fake = fakeIo()
  let reloads = 0
  await runCli(argv('serve'), fake.io, {
    startServer: async () => ({
      url: 'https://127.0.0.1:0',
      reload: async () => void reloads++,
      close: async () => {},
    }),
  })
  fake.signal('SIGHUP')
  fake.signal('SIGHUP')
  await tick()
  t.equal(reloads, 2)
  t.same(fake.exits, [], 'still running')
  t.equal(fake.logs().filter((l) => l.msg === 'reloading').length, 2)
  fake.signal('SIGTERM')
  await tick()
  fake.signal('SIGHUP')
  t.equal(reloads, 2, 'no reload once shutting down')
})

// The launcher holds V8's young generation small while modules load (cli/young-generation.ts):
// serve lets it grow only once it listens, any other command before its work starts.
t.test('serve releases the young generation once the server is up, other commands at once', async (t) => {
  const events: string[] = []
  const server = fakeServer()
  const deps = {
    startServer: async (config: Config) => {
      events.push('start')
      const running = await server.startServer(config, undefined as never)
      events.push('listening')
      return running
    },
    releaseYoungGeneration: () => events.push('release'),
  }
  await runCli(argv('serve', '--listen', ':0'), fakeIo().io, deps)
  t.same(events, ['start', 'listening', 'release'])

  events.length = 0
  const file = join(t.testdir({ 'ferry.yaml': 'listen: ":1000"\n' }), 'ferry.yaml')
  const check = fakeIo()
  await runCli(argv('config', 'check', file), check.io, deps)
  t.same(events, ['release'], 'config check: released, no server')
  t.same(check.exits, [])
})
