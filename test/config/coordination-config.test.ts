// coordination: the Redis URL and what must come with it, FERRY_COORDINATION_* overrides, and the
// password kept out of `ferry config print`.
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { runCli } from '../../src/cli/main.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected loadConfig to fail with a ConfigError')
}

t.test('without a Redis URL there is no coordination', async (t) => {
  const config = await loadConfig({ env: {} })
  t.same(config.coordination, {
    redis: undefined,
    leaseTtl: 15_000,
    advertiseUrl: undefined,
    peer: { serverName: undefined, caPath: undefined },
  })
})

t.test('FERRY_COORDINATION_* set the Redis URL, the advertised URL and the lease TTL', async (t) => {
  const config = await loadConfig({
    env: {
      FERRY_COORDINATION_REDIS_URL: 'rediss://:pw@redis.example:6380/2',
      FERRY_COORDINATION_ADVERTISE_URL: 'http://10.0.0.7:5000/',
      FERRY_COORDINATION_LEASE_TTL: '5s',
      FERRY_COORDINATION_PEER_SERVER_NAME: 'ferry.ferry.svc',
      FERRY_COORDINATION_PEER_CA_PATH: '/etc/ferry/tls/ca.crt',
    },
  })
  t.same(config.coordination, {
    redis: { url: 'rediss://:pw@redis.example:6380/2', keyPrefix: 'ferry:fill:', caPath: undefined },
    leaseTtl: 5000,
    advertiseUrl: 'http://10.0.0.7:5000',
    peer: { serverName: 'ferry.ferry.svc', caPath: '/etc/ferry/tls/ca.crt' },
  })
})

t.test('a Redis URL needs the advertised URL, and must be redis:// or rediss://', async (t) => {
  const missing = await configError(loadConfig({ env: { FERRY_COORDINATION_REDIS_URL: 'redis://redis:6379' } }))
  t.equal(missing.key, 'coordination.advertiseUrl')
  t.match(missing.message, /required with coordination\.redis\.url/)
  const wrong = await configError(
    loadConfig({
      env: { FERRY_COORDINATION_REDIS_URL: 'http://:secret-pw@redis:6379', FERRY_COORDINATION_ADVERTISE_URL: 'http://a:5000' },
    }),
  )
  t.equal(wrong.key, 'coordination.redis.url')
  t.notMatch(wrong.message, /secret-pw/, 'the error does not quote the password')
  const badAdvertise = await configError(loadConfig({ env: { FERRY_COORDINATION_ADVERTISE_URL: 'ftp://a' } }))
  t.equal(badAdvertise.key, 'coordination.advertiseUrl')
})

t.test('config print masks the Redis password', async (t) => {
  const yaml = 'coordination:\n  redis:\n    url: redis://ferry:very-secret@redis:6379/0\n  advertiseUrl: http://10.0.0.7:5000\n'
  const file = join(t.testdir({ 'ferry.yaml': yaml }), 'ferry.yaml')
  const fake = fakeIo()
  await runCli(['node', 'ferry', 'config', 'print', file], fake.io)
  t.notMatch(fake.stdout(), /very-secret/)
  const printed = parse(fake.stdout()) as { coordination: { redis: { url: string } } }
  t.equal(printed.coordination.redis.url, 'redis://ferry:***@redis:6379/0')
})
