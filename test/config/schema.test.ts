import { fileURLToPath } from 'node:url'
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { Value } from '@sinclair/typebox/value'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { configSchema, defaultConfig, defaultRawConfig, toRawConfig } from '../../src/config/schema.js'
import { leafPaths } from '../../src/config/validate.js'

const exampleFile = fileURLToPath(new URL('../../config/ferry.example.yaml', import.meta.url))

t.test('defaults', async (t) => {
  t.same(defaultConfig(), {
    listen: { host: '0.0.0.0', port: 5000 },
    storage: {
      driver: 'filesystem',
      filesystem: { path: './data' },
      s3: {
        bucket: '',
        prefix: '',
        region: 'us-east-1',
        endpoint: undefined,
        forcePathStyle: false,
        credentials: undefined,
        storageClass: undefined,
        sse: undefined,
        caPath: undefined,
        maxSockets: 50,
        requestChecksumCalculation: 'WHEN_SUPPORTED',
        spoolBytes: 4 * 1024 * 1024 * 1024,
      },
      deleteEnabled: true,
      uploads: { maxAge: 24 * 3_600_000, purgeInterval: 3_600_000 },
    },
    http: { idleTimeout: 75_000, shutdownTimeout: 30_000, sendfile: true },
    tls: { serving: undefined, clientCa: undefined, minVersion: 'TLSv1.2', http2: false },
    cache: { manifestMemory: 64 * 1024 * 1024, metadataTtl: 5000, maxSize: undefined, lowWatermark: 0.9, upstreams: [] },
    log: { level: 'info', format: 'auto' },
    auth: {
      htpasswd: undefined,
      users: [],
      roles: [],
      anonymousPull: [],
      anonymousMirrorPull: ['**'],
      token: { issuer: 'ferry', service: 'ferry', realm: undefined, ttl: 300_000, refreshTtl: 7 * 86_400_000, key: undefined },
      failedLogins: { max: 10, window: 300_000 },
    },
    mirror: {
      defaultUpstream: 'gcr.io',
      upstreams: [
        {
          name: 'gcr.io',
          url: 'https://gcr.io',
          aliases: [],
          tagTtl: 300_000,
          retries: 2,
          timeouts: { connect: 5000, headers: 30_000, bodyIdle: 60_000 },
          breaker: { failures: 5, cooldown: 30_000 },
          gcrKeyPath: undefined,
          gcrKeyFlow: 'jsonKey',
          pullCredentialConfigPath: undefined,
          tls: { caPath: undefined, certPath: undefined, keyPath: undefined, insecureSkipVerify: false },
          proxy: { kind: 'default' },
        },
      ],
      namespaces: [],
      pullCredentialConfigPath: undefined,
      proxy: { httpsProxy: undefined, httpProxy: undefined, noProxy: '' },
    },
    coordination: {
      redis: undefined,
      leaseTtl: 15_000,
      advertiseUrl: undefined,
      peer: { serverName: undefined, caPath: undefined },
    },
    maintenance: {
      gc: { interval: 86_400_000, grace: 3_600_000 },
      scrub: { interval: 7 * 86_400_000, rate: 50 * 1024 * 1024 },
      evictionInterval: 60_000,
      accessTimesFlush: 30_000,
    },
    imports: { retention: 7 * 86_400_000, keep: 20 },
  })
  t.ok(Value.Check(configSchema, defaultRawConfig()), 'default raw config satisfies the schema')
  t.not(defaultConfig(), defaultConfig(), 'each call returns a fresh object')
})

t.test('loading nothing gives the defaults', async (t) => {
  t.same(await loadConfig(), defaultConfig())
  t.same(await loadConfig({ env: {} }), defaultConfig())
})

t.test('the example config validates and equals the defaults', async (t) => {
  t.same(await loadConfig({ file: exampleFile }), defaultConfig())
  t.same(parse(await readFile(exampleFile, 'utf8')), defaultRawConfig(), 'written as the defaults are')
})

t.test('the example config documents every key', async (t) => {
  const lines = (await readFile(exampleFile, 'utf8')).split('\n')
  for (const path of leafPaths(configSchema)) {
    const key = path[path.length - 1] ?? ''
    // Optional keys without a default are shown commented out. A key is looked for below its
    // sections' lines, so `coordination.redis.url` is not found at an upstream's `url:`.
    const names = (l: string, name: string): boolean => l.trimStart().replace(/^#\s*/, '').startsWith(`${name}:`)
    let from = 0
    for (const section of path.slice(0, -1))
      from = Math.max(
        from,
        lines.findIndex((l, n) => n >= from && names(l, section)),
      )
    const at = lines.findIndex((l, n) => n >= from && names(l, key))
    t.ok(at > 0, `${path.join('.')} is in the example`)
    t.match(lines[at - 1], /^\s*#/, `${path.join('.')} has a comment above it`)
  }
})

t.test('toRawConfig round-trips through the schema', async (t) => {
  const raw = toRawConfig(defaultConfig())
  t.ok(Value.Check(configSchema, raw))
  t.same(raw, defaultRawConfig(), 'defaults print as they are written')
})
