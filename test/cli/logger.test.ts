// Lives here because this task may only add tests under test/cli and test/config; it belongs in
// test/observability/ once that directory exists.
import t from 'tap'
import { createLogger } from '../../src/observability/logger.js'

t.test('credentials are redacted', async (t) => {
  const lines: string[] = []
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) })
  logger.info(
    {
      req: { headers: { authorization: 'Basic abc', cookie: 'c=1', 'proxy-authorization': 'Bearer p', accept: '*/*' } },
      headers: { authorization: 'Bearer xyz' },
      upstream: { password: 'pw', token: 't', secret: 's', privateKey: 'k', private_key: 'k2', host: 'gcr.io' },
    },
    'request',
  )
  const line = JSON.parse(lines[0] ?? '{}') as Record<string, Record<string, Record<string, unknown>>>
  t.same(line.req?.headers, { authorization: '[redacted]', cookie: '[redacted]', 'proxy-authorization': '[redacted]', accept: '*/*' })
  t.same(line.headers, { authorization: '[redacted]' })
  t.same(line.upstream, {
    password: '[redacted]',
    token: '[redacted]',
    secret: '[redacted]',
    privateKey: '[redacted]',
    private_key: '[redacted]',
    host: 'gcr.io',
  })
  t.equal(line.name, 'ferry')
})

t.test('each line carries the ISO time of its own millisecond', async (t) => {
  const lines: string[] = []
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) })
  const times = new Set<string>()
  const outside: string[] = []
  // Lines in one millisecond share its time; a line in a later millisecond has a later one.
  for (let i = 0; i < 1_000_000 && times.size < 3 && outside.length === 0; i++) {
    const before = Date.now()
    logger.info('tick')
    const after = Date.now()
    const time = (JSON.parse(lines.pop()!) as { time: string }).time
    const ms = Date.parse(time)
    if (ms < before || ms > after) outside.push(`${time} not within ${before}..${after}`)
    times.add(time)
  }
  t.same(outside, [], 'every time is the time of its call')
  t.ok(times.size >= 3, 'the time moved on')
  t.match([...times][0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
})

t.test('the level is honoured', async (t) => {
  const lines: string[] = []
  const logger = createLogger('warn', { write: (line: string) => void lines.push(line) })
  logger.info('hidden')
  logger.warn('shown')
  t.equal(lines.length, 1)
})

t.test('readable lines on a terminal, JSON lines elsewhere, secrets redacted in both', async (t) => {
  const { PassThrough } = await import('node:stream')
  const { runCli } = await import('../../src/cli/main.js')
  const { fakeIo } = await import('./fixtures/fake-io.js')
  const run = async (isTTY: boolean, env: Record<string, string> = {}, args: string[] = []) => {
    const sink = Object.assign(new PassThrough(), { isTTY })
    let text = ''
    sink.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
    const fake = fakeIo(env)
    delete fake.io.logDestination
    fake.io.logSink = sink
    let logger: import('pino').Logger | undefined
    await runCli(['node', 'ferry', 'serve', '--listen', ':0', ...args], fake.io, {
      startServer: async (_config, started) => {
        logger = started
        return { url: 'http://127.0.0.1:0', close: async () => {} }
      },
    })
    logger?.info({ req: { headers: { authorization: 'Basic c2VjcmV0' } }, upstream: { password: 'hunter2' } }, 'a request')
    await new Promise((resolve) => setImmediate(resolve))
    return text
  }
  const terminal = await run(true, { NO_COLOR: '1' })
  t.match(terminal, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ferry started/m, 'readable on a terminal')
  t.notMatch(terminal, /^\{/m, 'no JSON line')
  t.notOk(terminal.includes('\u001b['), 'no colours with NO_COLOR')
  const piped = await run(false)
  t.match(piped, /^\{"level":30,.*"msg":"ferry started"/m, 'JSON into a pipe or file')
  t.match(await run(false, { FERRY_LOG_FORMAT: 'pretty' }), /INFO: ferry started/, 'FERRY_LOG_FORMAT=pretty')
  t.match(await run(true, {}, ['--log-format', 'json']), /^\{"level":30/m, '--log-format json on a terminal')
  for (const [what, text] of [
    ['readable', terminal],
    ['JSON', piped],
  ]) {
    t.match(text, /a request/, `${what}: the line is there`)
    t.notMatch(text, /c2VjcmV0|hunter2/, `${what}: no secret`)
    t.match(text, /\[redacted\]/, `${what}: redacted`)
  }
})

t.test('a reader that falls behind costs bounded memory: lines past the bound are dropped, then counted', async (t) => {
  const { Writable } = await import('node:stream')
  const { logOutput } = await import('../../src/observability/log-output.js')
  const written: string[] = []
  let release: (() => void) | undefined
  // A reader that takes nothing until told: everything queues in the stream.
  const sink = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk.toString())
      if (release === undefined) release = callback
      else callback()
    },
  })
  const logger = createLogger('info', logOutput(sink, { pretty: false, maxQueuedBytes: 4096 }))
  for (let i = 0; i < 1000; i++) logger.info({ i }, 'line')
  await new Promise((resolve) => setImmediate(resolve)) // the turn's lines are written at its end
  t.ok(sink.writableLength <= 4096 + 200, `at most the bound queued (${sink.writableLength} bytes)`)
  const drained = new Promise((resolve) => sink.once('drain', resolve))
  release?.()
  await drained
  await new Promise((resolve) => setImmediate(resolve))
  const lines = written
    .join('')
    .split('\n')
    .filter((l) => l !== '')
  const dropped = lines.map((l) => JSON.parse(l) as { msg: string; dropped?: number }).find((l) => l.msg.startsWith('log lines dropped'))
  t.ok(dropped && dropped.dropped! > 900, `the drop is reported (${dropped?.dropped} lines)`)
})
