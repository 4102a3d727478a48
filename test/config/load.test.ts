import { join } from 'node:path'
import t from 'tap'
import { defaultConfig } from '../../src/config/schema.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'

// The ConfigError a load fails with; anything else (or success) fails the test.
async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected loadConfig to fail with a ConfigError')
}

t.test('parses a YAML file and fills defaults for missing keys', async (t) => {
  const dir = t.testdir({
    'ferry.yaml': [
      'listen: "[::1]:6000"',
      'storage:',
      '  filesystem:',
      '    path: /var/lib/ferry',
      '  deleteEnabled: false',
      '  uploads:',
      '    maxAge: 1h30m',
      'http:',
      '  idleTimeout: 5s',
      'cache:',
      '  manifestMemory: 1GiB',
      'log:',
      '  level: debug',
      '',
    ].join('\n'),
  })
  const config = await loadConfig({ file: join(dir, 'ferry.yaml') })
  t.same(config, {
    listen: { host: '::1', port: 6000 },
    storage: {
      driver: 'filesystem',
      filesystem: { path: '/var/lib/ferry' },
      s3: defaultConfig().storage.s3,
      deleteEnabled: false,
      uploads: { maxAge: 5_400_000, purgeInterval: 3_600_000 },
    },
    http: { idleTimeout: 5000, shutdownTimeout: 30_000, sendfile: true },
    tls: defaultConfig().tls,
    cache: { ...defaultConfig().cache, manifestMemory: 1024 ** 3, metadataTtl: 5000 },
    log: { level: 'debug', format: 'auto' },
    auth: defaultConfig().auth,
    mirror: defaultConfig().mirror,
    coordination: defaultConfig().coordination,
    maintenance: defaultConfig().maintenance,
    imports: defaultConfig().imports,
  })
})

t.test('empty files and empty sections mean defaults', async (t) => {
  const dir = t.testdir({ 'empty.yaml': '', 'sections.yaml': 'storage:\n  uploads:\nhttp:\n' })
  const empty = await loadConfig({ file: join(dir, 'empty.yaml') })
  t.equal(empty.listen.port, 5000)
  const sections = await loadConfig({ file: join(dir, 'sections.yaml') })
  t.equal(sections.storage.uploads.maxAge, 86_400_000)
})

t.test('each error names the key, the file and the line', async (t) => {
  const cases: Array<[string, string, string, number]> = [
    [
      'storage:\n  uploads:\n    maxAge: soon\n',
      'storage.uploads.maxAge',
      'config error in FILE:3 at storage.uploads.maxAge: expected a duration like "24h", "30s" or "500ms", got "soon"',
      3,
    ],
    [
      'cache:\n  manifestMemory: lots\n',
      'cache.manifestMemory',
      'config error in FILE:2 at cache.manifestMemory: expected a size like "64MiB", "1GiB" or "100MB", got "lots"',
      2,
    ],
    [
      'storage:\n  filesytem:\n    path: /x\n',
      'storage.filesytem',
      'config error in FILE:2 at storage.filesytem: unknown key (did you mean storage.filesystem?)',
      2,
    ],
    ['log:\n  level: debug\nmetrics: {}\n', 'metrics', 'config error in FILE:3 at metrics: unknown key', 3],
    ['__proto__:\n  listen: ":1"\n', '__proto__', 'config error in FILE:1 at __proto__: unknown key', 1],
    [
      'storage:\n  deleteEnabled: "maybe"\n',
      'storage.deleteEnabled',
      'config error in FILE:2 at storage.deleteEnabled: expected true or false, got "maybe"',
      2,
    ],
    ['http: 5\n', 'http', 'config error in FILE:1 at http: expected a mapping of keys, got 5', 1],
    [
      'listen: "::1:5000"\n',
      'listen',
      'config error in FILE:1 at listen: expected a listen address like ":5000", "127.0.0.1:5000" or "[::1]:5000" (port 0-65535), got "::1:5000"',
      1,
    ],
    [
      'listen: ":99999"\n',
      'listen',
      'config error in FILE:1 at listen: expected a listen address like ":5000", "127.0.0.1:5000" or "[::1]:5000" (port 0-65535), got ":99999"',
      1,
    ],
    [
      'log:\n  level: loud\n',
      'log.level',
      'config error in FILE:2 at log.level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      2,
    ],
    ['storage:\n  driver: s4\n', 'storage.driver', 'config error in FILE:2 at storage.driver: expected one of filesystem, s3, got "s4"', 2],
    [
      'storage:\n  filesystem:\n    path: [a, b]\n',
      'storage.filesystem.path',
      'config error in FILE:3 at storage.filesystem.path: expected a non-empty path, got a list',
      3,
    ],
    [
      'http:\n  idleTimeout: 75\n',
      'http.idleTimeout',
      'config error in FILE:2 at http.idleTimeout: 75 has no unit; write "75s" or "75ms"',
      2,
    ],
    [
      'cache:\n  manifestMemory: 67108864\n',
      'cache.manifestMemory',
      'config error in FILE:2 at cache.manifestMemory: 67108864 has no unit; write "64MiB" (67108864 bytes) or "67108864B"',
      2,
    ],
    [
      'cache:\n  manifestMemory: "100"\n',
      'cache.manifestMemory',
      'config error in FILE:2 at cache.manifestMemory: 100 has no unit; write "100MiB" or "100B"',
      2,
    ],
    [
      'storage:\n  uploads:\n    purgeInterval: 0\n',
      'storage.uploads.purgeInterval',
      'config error in FILE:3 at storage.uploads.purgeInterval: expected a duration greater than 0, got 0',
      3,
    ],
  ]
  for (const [yaml, key, message, line] of cases) {
    const dir = t.testdir({ 'ferry.yaml': yaml })
    const file = join(dir, 'ferry.yaml')
    const err = await configError(loadConfig({ file }))
    t.equal(err.message, message.replace('FILE', file), key)
    t.equal(err.key, key)
    t.equal(err.file, file)
    t.equal(err.line, line)
  }
})

t.test('errors inside lists keep the file and the line', async (t) => {
  const upstreams = [
    'mirror:',
    '  upstreams:',
    '    - name: gcr.io',
    '      url: https://gcr.io',
    '    - name: docker.io',
    '      url: https://registry-1.docker.io',
  ]
  const cases: Array<[string[], string, string, number]> = [
    [
      [...upstreams, '      tagTl: 5m'],
      'mirror.upstreams.1.tagTl',
      'config error in FILE:7 at mirror.upstreams.1.tagTl: unknown key (did you mean mirror.upstreams.1.tagTtl?)',
      7,
    ],
    [
      [...upstreams, '      retries: 99'],
      'mirror.upstreams.1.retries',
      'config error in FILE:7 at mirror.upstreams.1.retries: expected an integer from 0 to 10, got 99',
      7,
    ],
    [
      [...upstreams, '    - name: quay.io'],
      'mirror.upstreams.2.url',
      'config error in FILE:7 at mirror.upstreams.2.url: missing: expected an http(s) base URL like "https://gcr.io"',
      7,
    ],
    [
      [...upstreams, '      timeouts:', '        connect: 0s'],
      'mirror.upstreams.1.timeouts.connect',
      'config error in FILE:8 at mirror.upstreams.1.timeouts.connect: expected a duration greater than 0, got "0s"',
      8,
    ],
    [
      [...upstreams, '  namespaces:', '    - { name: team, upstream: gcr.io }', '    - { name: other, upstream: quay.io }'],
      'mirror.namespaces.1.upstream',
      'config error in FILE:9 at mirror.namespaces.1.upstream: no upstream named "quay.io" (known: gcr.io, docker.io)',
      9,
    ],
    [
      ['auth:', '  roles:', '    - subjects: [alice]', '      namespaces: ["**"]', '      role: owner'],
      'auth.roles.0.role',
      'config error in FILE:5 at auth.roles.0.role: expected one of viewer, editor, admin, got "owner"',
      5,
    ],
  ]
  for (const [yaml, key, message, line] of cases) {
    const file = join(t.testdir({ 'ferry.yaml': yaml.join('\n') + '\n' }), 'ferry.yaml')
    const err = await configError(loadConfig({ file }))
    t.equal(err.message, message.replace('FILE', file), key)
    t.equal(err.key, key)
    t.equal(err.file, file)
    t.equal(err.line, line)
  }
})

t.test('a list given by a flag is blamed on the flag, not the file', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'mirror:\n  upstreams:\n    - { name: gcr.io, url: https://gcr.io }\n' }), 'ferry.yaml')
  const err = await configError(loadConfig({ file, overrides: { mirror: { upstreams: [{ name: 'gcr.io', url: 'ftp://x' }] } } as never }))
  t.equal(err.file, undefined)
  t.match(err.message, /^config error at mirror\.upstreams\.0\.url: /)
})

t.test('invalid YAML names the file and the line', async (t) => {
  const dir = t.testdir({
    'bad.yaml': 'listen: ":5000"\nstorage:\n  filesystem: [\n',
    'dup.yaml': 'log:\n  level: info\nlog:\n  level: debug\n',
    'list.yaml': '- listen\n',
  })
  const bad = await configError(loadConfig({ file: join(dir, 'bad.yaml') }))
  t.match(bad.message, new RegExp(`^config error in ${join(dir, 'bad.yaml')}:4:\\d+: invalid YAML: `))
  t.equal(bad.line, 4)
  const dup = await configError(loadConfig({ file: join(dir, 'dup.yaml') }))
  t.match(dup.message, `${join(dir, 'dup.yaml')}:3:1: invalid YAML: Map keys must be unique`)
  const list = await configError(loadConfig({ file: join(dir, 'list.yaml') }))
  t.equal(list.message, `config error in ${join(dir, 'list.yaml')}: expected a mapping of keys at the top level`)
})

t.test('an unreadable file is named', async (t) => {
  const file = join(t.testdir({}), 'missing.yaml')
  const err = await configError(loadConfig({ file }))
  t.equal(err.message, `config error: cannot read ${file}: no such file`)
  t.equal(err.file, file)
})

t.test('errors in overrides name the key without a file', async (t) => {
  const dir = t.testdir({ 'ferry.yaml': 'listen: ":5000"\n' })
  const err = await configError(loadConfig({ file: join(dir, 'ferry.yaml'), overrides: { listen: 'nowhere' } }))
  t.match(err.message, /^config error at listen: expected a listen address/)
  t.equal(err.file, undefined)
})

t.test('precedence: file < env < overrides', async (t) => {
  const dir = t.testdir({ 'ferry.yaml': 'listen: ":1000"\nlog:\n  level: warn\nstorage:\n  filesystem:\n    path: /file\n' })
  const file = join(dir, 'ferry.yaml')
  const fileOnly = await loadConfig({ file })
  t.same([fileOnly.listen.port, fileOnly.log.level, fileOnly.storage.filesystem.path], [1000, 'warn', '/file'])

  const env = { FERRY_LISTEN: ':2000', FERRY_LOG_LEVEL: 'error' }
  const withEnv = await loadConfig({ file, env })
  t.same([withEnv.listen.port, withEnv.log.level, withEnv.storage.filesystem.path], [2000, 'error', '/file'])

  const all = await loadConfig({ file, env, overrides: { listen: ':3000', storage: { filesystem: { path: undefined } } } })
  t.same([all.listen.port, all.log.level, all.storage.filesystem.path], [3000, 'error', '/file'], 'undefined overrides are ignored')
})

t.test('the options object is not mutated', async (t) => {
  const overrides = { storage: { uploads: { maxAge: '1h' } } }
  await loadConfig({ overrides })
  t.same(overrides, { storage: { uploads: { maxAge: '1h' } } })
})
