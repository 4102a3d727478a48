import t from 'tap'
import { defaultConfig } from '../../src/config/schema.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'
import { envName, isServiceLinkVariable, type IgnoredEnv } from '../../src/config/env.js'

t.test('FERRY_* variables override keys, camelCase with or without underscores', async (t) => {
  const config = await loadConfig({
    env: {
      FERRY_LISTEN: '127.0.0.1:7000',
      FERRY_STORAGE_FILESYSTEM_PATH: '/srv/ferry',
      FERRY_STORAGE_DELETE_ENABLED: 'false',
      FERRY_STORAGE_UPLOADS_MAXAGE: '2h',
      FERRY_STORAGE_UPLOADS_PURGE_INTERVAL: '90s',
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
      s3: defaultConfig().storage.s3,
      deleteEnabled: false,
      uploads: { maxAge: 7_200_000, purgeInterval: 90_000 },
    },
    http: { idleTimeout: 10_000, shutdownTimeout: 0, sendfile: false },
    tls: defaultConfig().tls,
    cache: { ...defaultConfig().cache, manifestMemory: 1024 * 1024, metadataTtl: 5000 },
    log: { level: 'trace', format: 'auto' },
    auth: defaultConfig().auth,
    mirror: defaultConfig().mirror,
    coordination: defaultConfig().coordination,
    maintenance: defaultConfig().maintenance,
    imports: defaultConfig().imports,
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

t.test('a duration or size without a unit names the variable and shows the fix; 0 needs none', async (t) => {
  await t.rejects(loadConfig({ env: { FERRY_HTTP_IDLE_TIMEOUT: '75' } }), {
    key: 'http.idleTimeout',
    message: 'config error at http.idleTimeout (from FERRY_HTTP_IDLE_TIMEOUT): 75 has no unit; write "75s" or "75ms"',
  })
  const config = await loadConfig({ env: { FERRY_CACHE_METADATA_TTL: '0', FERRY_CACHE_MANIFEST_MEMORY: '0' } })
  t.same([config.cache.metadataTtl, config.cache.manifestMemory], [0, 0])
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

t.test('an unknown FERRY_ variable is ignored and reported with a suggestion', async (t) => {
  const ignored: IgnoredEnv[] = []
  const config = await loadConfig({ env: { FERRY_LOG_LEVL: 'debug', FERRY_STORAGE: '/x' }, onIgnoredEnv: (i) => ignored.push(i) })
  t.equal(config.log.level, 'info')
  t.same(ignored, [
    { variable: 'FERRY_LOG_LEVL', kind: 'unknown', didYouMean: 'FERRY_LOG_LEVEL' },
    { variable: 'FERRY_STORAGE', kind: 'unknown' },
  ])
})

t.test('Kubernetes service-link variables are never config keys', async (t) => {
  const links = {
    FERRY_SERVICE_HOST: '10.96.0.12',
    FERRY_SERVICE_PORT: '5000',
    FERRY_SERVICE_PORT_HTTP: '5000',
    FERRY_PORT: 'tcp://10.96.0.12:5000',
    FERRY_PORT_5000_TCP: 'tcp://10.96.0.12:5000',
    FERRY_PORT_5000_TCP_PROTO: 'tcp',
    FERRY_PORT_5000_TCP_PORT: '5000',
    FERRY_PORT_5000_TCP_ADDR: '10.96.0.12',
    // A Service named ferry-cache, whose name begins like a config section.
    FERRY_CACHE_SERVICE_HOST: '10.96.0.13',
    FERRY_CACHE_PORT_53_UDP_ADDR: '10.96.0.13',
  }
  const ignored: IgnoredEnv[] = []
  t.same(await loadConfig({ env: links, onIgnoredEnv: (i) => ignored.push(i) }), defaultConfig())
  t.same(
    ignored,
    Object.keys(links)
      .sort()
      .map((variable) => ({ variable, kind: 'service-link' })),
  )
  t.ok(isServiceLinkVariable('ferry_port_5000_tcp'), 'names are matched case-insensitively')
  t.notOk(isServiceLinkVariable('FERRY_LISTEN'))
  t.notOk(isServiceLinkVariable('FERRY_PORT_HTTP'), 'a port is numbered, not named, after _PORT_')
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
