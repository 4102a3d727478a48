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

t.test('the level is honoured', async (t) => {
  const lines: string[] = []
  const logger = createLogger('warn', { write: (line: string) => void lines.push(line) })
  logger.info('hidden')
  logger.warn('shown')
  t.equal(lines.length, 1)
})
