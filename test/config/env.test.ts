import t from 'tap'
import { defaultConfig } from '../../src/config/schema.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'
import { envName } from '../../src/config/env.js'

t.test('FERRY_* variables override keys, camelCase with or without underscores', async (t) => {
  const config = await loadConfig({
    env: {
      FERRY_LISTEN: '127.0.0.1:7000',
      FERRY_STORAGE_FILESYSTEM_PATH: '/srv/ferry',
      FERRY_STORAGE_DELETE_ENABLED: 'false',
      FERRY_STORAGE_UPLOADS_MAXAGE: '2h',
      FERRY_STORAGE_UPLOADS_PURGE_INTERVAL: '90000',
      FERRY_HTTP_IDLE_TIMEOUT: '10s',
      FERRY_HTTP_SHUTDOWNTIMEOUT: '0',
      FERRY_HTTP_SENDFILE: 'false',
      FERRY_CACHE_MANIFEST_MEMORY: '1MiB',
      FERRY_LOG_LEVEL: 'trace',
      PATH: '/usr/bin',
    },
  })
  t.same(config, {
    listen: { host: '127.0.0.1', port: 7000 },
    storage: {
      driver: 'filesystem',
      filesystem: { path: '/srv/ferry' },
      deleteEnabled: false,
      uploads: { maxAge: 7_200_000, purgeInterval: 90_000 },
    },
    http: { idleTimeout: 10_000, shutdownTimeout: 0, sendfile: false },
    tls: defaultConfig().tls,
    cache: { manifestMemory: 1024 * 1024, metadataTtl: 5000 },
    log: { level: 'trace', format: 'auto' },
    auth: defaultConfig().auth,
    mirror: defaultConfig().mirror,
  })
})

t.test('booleans coerce from the usual spellings', async (t) => {
  for (const [value, expected] of [
    ['true', true],
    ['1', true],
    ['YES', true],
    ['off', false],
    ['0', false],
  ] as const) {
    const config = await loadConfig({ env: { FERRY_STORAGE_DELETE_ENABLED: value } })
    t.equal(config.storage.deleteEnabled, expected, value)
  }
})

t.test('FERRY_CONFIG and empty values are not overrides', async (t) => {
  const config = await loadConfig({ env: { FERRY_CONFIG: '/etc/ferry.yaml', FERRY_LOG_LEVEL: '' } })
  t.equal(config.log.level, 'info')
})

t.test('a bad value names the key and the variable', async (t) => {
  await t.rejects(loadConfig({ env: { FERRY_HTTP_IDLE_TIMEOUT: 'soon' } }), {
    constructor: ConfigError,
    key: 'http.idleTimeout',
    envVar: 'FERRY_HTTP_IDLE_TIMEOUT',
    message:
      'config error at http.idleTimeout (from FERRY_HTTP_IDLE_TIMEOUT): expected a duration like "24h", "30s" or "500ms", got "soon"',
  })
  await t.rejects(loadConfig({ env: { FERRY_STORAGE_DELETE_ENABLED: 'maybe' } }), {
    message: 'config error at storage.deleteEnabled (from FERRY_STORAGE_DELETE_ENABLED): expected true or false, got "maybe"',
  })
})

t.test('an unknown FERRY_ variable is an error with a suggestion', async (t) => {
  await t.rejects(loadConfig({ env: { FERRY_LOG_LEVL: 'debug' } }), {
    constructor: ConfigError,
    message: 'config error: unknown environment variable FERRY_LOG_LEVL (did you mean FERRY_LOG_LEVEL?)',
  })
  await t.rejects(loadConfig({ env: { FERRY_STORAGE: '/x' } }), {
    message: /^config error: unknown environment variable FERRY_STORAGE\b/,
  })
})

t.test('env overrides the file, and a file error still names the file', async (t) => {
  const dir = t.testdir({ 'ferry.yaml': 'http:\n  idleTimeout: soon\n' })
  const file = `${dir}/ferry.yaml`
  const config = await loadConfig({ file, env: { FERRY_HTTP_IDLE_TIMEOUT: '1m' } })
  t.equal(config.http.idleTimeout, 60_000, 'the env value replaces the bad file value')
  await t.rejects(loadConfig({ file }), {
    message: `config error in ${file}:2 at http.idleTimeout: expected a duration like "24h", "30s" or "500ms", got "soon"`,
  })
})

t.test('canonical variable names', async (t) => {
  t.equal(envName(['http', 'idleTimeout']), 'FERRY_HTTP_IDLE_TIMEOUT')
  t.equal(envName(['storage', 'filesystem', 'path']), 'FERRY_STORAGE_FILESYSTEM_PATH')
})
