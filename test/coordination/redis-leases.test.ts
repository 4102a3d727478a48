// Fill leases against a real redis-server: one holder at a time, the holder named to the others,
// release by token only, and a holder that stops renewing loses the lease after its TTL.
import { Redis } from 'ioredis'
import pino from 'pino'
import t, { type Test } from 'tap'
import { RedisCoordinator } from '../../src/coordination/redis-leases.js'
import { StartupError } from '../../src/core/startup-error.js'
import { eventually } from '../helpers/eventually.js'
import { freePort } from '../helpers/distribution.js'
import { startRedisServer } from '../helpers/redis-server.js'
import { missingTools } from '../helpers/tools.js'

if (missingTools('redis-server').length > 0) t.plan(0, 'needs redis-server (apt-get install redis-server)')
else await main()

async function main(): Promise<void> {
  const server = await startRedisServer()
  const admin = new Redis(server.url)
  t.teardown(async () => {
    await admin.quit()
    await server.stop()
  })
  const logger = pino({ level: 'silent' })
  const coordinator = async (t: Test, advertiseUrl: string, leaseTtlMs = 10_000): Promise<RedisCoordinator> => {
    const c = await RedisCoordinator.connect({ url: server.url, keyPrefix: 'test:', leaseTtlMs, advertiseUrl, caPath: undefined, logger })
    t.teardown(() => c.close())
    return c
  }

  t.test('one holder at a time; the others are told who holds it; released leases are free again', async (t) => {
    const a = await coordinator(t, 'http://a:5000')
    const b = await coordinator(t, 'http://b:5000')
    const first = await a.acquire('k1')
    if (!first.held) throw new Error('a should hold k1')
    t.equal(a.heldToken('k1'), first.lease.token)
    t.match(first.lease.token, /^[0-9a-f]{32}$/)
    const second = await b.acquire('k1')
    t.same(second, { held: false, holder: { url: 'http://a:5000', token: first.lease.token } })
    t.equal(b.heldToken('k1'), undefined)
    await first.lease.release()
    t.equal(a.heldToken('k1'), undefined)
    t.equal(await admin.exists('test:k1'), 0)
    const third = await b.acquire('k1')
    t.ok(third.held, 'b takes it once a let go')
    if (third.held) await third.lease.release()
  })

  t.test('an old holder never releases the lease another replica took after it expired', async (t) => {
    const a = await coordinator(t, 'http://a:5000')
    const b = await coordinator(t, 'http://b:5000')
    const old = await a.acquire('k2')
    if (!old.held) throw new Error('a should hold k2')
    await admin.del('test:k2') // as if it had expired
    const taken = await b.acquire('k2')
    if (!taken.held) throw new Error('b should hold k2')
    await old.lease.release()
    t.match(await admin.get('test:k2'), new RegExp(`^${taken.lease.token} http://b:5000$`), "b's lease survives a's release")
    await taken.lease.release()
  })

  t.test('a holder renews its lease while it runs; one that dies loses it after the TTL', async (t) => {
    const a = await coordinator(t, 'http://a:5000', 1500)
    const b = await coordinator(t, 'http://b:5000', 1500)
    const held = await a.acquire('k3')
    if (!held.held) throw new Error('a should hold k3')
    // Stretch the key's TTL far out: the holder's next renewal sets it back to its own TTL.
    await admin.pexpire('test:k3', 600_000)
    await eventually(async () => (await admin.pttl('test:k3')) <= 1500, { message: 'the holder renewed its lease' })
    t.match(await admin.get('test:k3'), new RegExp(`^${held.lease.token} `), 'still the same lease')
    await a.close() // the holder dies: nobody renews
    const takenOver = await eventually(async () => {
      const attempt = await b.acquire('k3')
      return attempt.held ? attempt : undefined
    })
    t.ok(takenOver.held, 'another replica takes the lease once it expired')
    await takenOver.lease.release()
  })

  t.test('an unreachable Redis at start-up is a StartupError naming the setting, without the password', async (t) => {
    const port = await freePort()
    const err = await RedisCoordinator.connect({
      url: `redis://:hidden-pw@127.0.0.1:${port}`,
      keyPrefix: 'x:',
      leaseTtlMs: 1000,
      advertiseUrl: 'http://a:5000',
      caPath: undefined,
      logger,
    }).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(err instanceof StartupError)
    t.equal((err as StartupError).setting, 'coordination.redis.url')
    t.notMatch((err as Error).message, /hidden-pw/)
    t.match((err as Error).message, /redis:\/\/:\*\*\*@127\.0\.0\.1/)
  })
}
