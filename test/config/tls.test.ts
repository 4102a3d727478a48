// The tls section: defaults, pairing rules (errors name the key), env and flag overrides, printing.
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'
import { defaultConfig, toRawConfig } from '../../src/config/schema.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'

t.test('defaults: plain HTTP, TLS 1.2 floor, HTTP/2 on', async (t) => {
  t.same(defaultConfig().tls, { serving: undefined, clientCa: undefined, minVersion: 'TLSv1.2', http2: false })
})

t.test('a file with cert, key and client CA', async (t) => {
  const dir = t.testdir({
    'ferry.yaml':
      'tls:\n  cert: /etc/ferry/tls.crt\n  key: /etc/ferry/tls.key\n  clientCa: /etc/ferry/ca.crt\n  minVersion: TLSv1.3\n  http2: false\n',
  })
  const config = await loadConfig({ file: join(dir, 'ferry.yaml') })
  t.same(config.tls, {
    serving: { cert: '/etc/ferry/tls.crt', key: '/etc/ferry/tls.key' },
    clientCa: '/etc/ferry/ca.crt',
    minVersion: 'TLSv1.3',
    http2: false,
  })
  t.same(
    toRawConfig(config).tls,
    {
      cert: '/etc/ferry/tls.crt',
      key: '/etc/ferry/tls.key',
      clientCa: '/etc/ferry/ca.crt',
      minVersion: 'TLSv1.3',
      http2: false,
    },
    'prints as written',
  )
})

t.test('cert and key come in pairs; a client CA needs both; errors name the key', async (t) => {
  const cases: Array<[string, string, string]> = [
    // A missing key is placed at its section, the deepest part of its path in the file.
    [
      'tls:\n  cert: /a.crt\n',
      'tls.key',
      'config error in FILE:1 at tls.key: required when tls.cert is set (the private key of that certificate)',
    ],
    ['tls:\n  key: /a.key\n', 'tls.cert', 'config error in FILE:1 at tls.cert: required when tls.key is set (the certificate of that key)'],
    [
      'tls:\n  clientCa: /ca.crt\n',
      'tls.clientCa',
      'config error in FILE:2 at tls.clientCa: needs tls.cert and tls.key: client certificates can only be verified over TLS',
    ],
    [
      'tls:\n  minVersion: TLSv1.1\n',
      'tls.minVersion',
      'config error in FILE:2 at tls.minVersion: expected one of TLSv1.2, TLSv1.3, got "TLSv1.1"',
    ],
    ['tls:\n  http2: maybe\n', 'tls.http2', 'config error in FILE:2 at tls.http2: expected true or false, got "maybe"'],
    ['tls:\n  clientCA: /ca.crt\n', 'tls.clientCA', 'config error in FILE:2 at tls.clientCA: unknown key (did you mean tls.clientCa?)'],
  ]
  for (const [yaml, key, message] of cases) {
    const file = join(t.testdir({ 'ferry.yaml': yaml }), 'ferry.yaml')
    await t.rejects(loadConfig({ file }), { constructor: ConfigError, key, message: message.replace('FILE', file) }, key)
  }
})

t.test('FERRY_TLS_* variables', async (t) => {
  const config = await loadConfig({
    env: {
      FERRY_TLS_CERT: '/c.crt',
      FERRY_TLS_KEY: '/c.key',
      FERRY_TLS_CLIENT_CA: '/ca.crt',
      FERRY_TLS_MIN_VERSION: 'TLSv1.3',
      FERRY_TLS_HTTP2: 'false',
    },
  })
  t.same(config.tls, { serving: { cert: '/c.crt', key: '/c.key' }, clientCa: '/ca.crt', minVersion: 'TLSv1.3', http2: false })
  await t.rejects(loadConfig({ env: { FERRY_TLS_CERT: '/c.crt' } }), { key: 'tls.key', message: /^config error at tls.key/ })
})

t.test('--tls-cert, --tls-key and --tls-client-ca override the file', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'tls:\n  cert: /file.crt\n  key: /file.key\n' }), 'ferry.yaml')
  const fake = fakeIo()
  await runCli(
    ['node', 'ferry', 'config', 'print', file, '--tls-cert', '/flag.crt', '--tls-key', '/flag.key', '--tls-client-ca', '/flag-ca.crt'],
    fake.io,
  )
  t.match(
    fake.stdout(),
    /tls:\n {2}cert: \/flag\.crt\n {2}key: \/flag\.key\n {2}clientCa: \/flag-ca\.crt\n {2}minVersion: TLSv1\.2\n {2}http2: false\n/,
  )

  const missingKey = fakeIo()
  await runCli(['node', 'ferry', 'serve', '--tls-cert', '/flag.crt'], missingKey.io, {
    startServer: async () => {
      throw new Error('must not start')
    },
  })
  t.equal(missingKey.stderr(), 'ferry: config error at tls.key: required when tls.cert is set (the private key of that certificate)\n')
  t.same(missingKey.exits, [2])
})
