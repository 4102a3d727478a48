// Many requests at once against a store reached through few sockets: they wait for a request slot
// in the driver instead of timing out in the HTTP agent's queue (a manifest listing 10,000 layers
// checks 10,000 links at once). The connection timeout is cut to 0.5 s so that, without the slots,
// requests queued behind the single socket fail within the test; with them, every one answers.
import t from 'tap'
import { S3Driver } from '../../../src/storage/driver/s3.js'
import { startS3Server } from '../../helpers/s3-server.js'

const s3 = await startS3Server()
t.teardown(() => s3.close())

t.test('300 concurrent lookups through one socket all answer; none times out queued', async (t) => {
  const driver = await S3Driver.create({ ...s3.driverOptions('slots'), maxSockets: 1, connectTimeoutMs: 500, conditionalWrites: false })
  await driver.putContent('links/present', 'x')
  const lookups = Array.from({ length: 300 }, (_, i) =>
    i % 2 === 0 ? driver.getContent('links/present') : driver.stat(`links/absent-${i}`),
  )
  const settled = await Promise.allSettled(lookups)
  const failed = settled.filter((result) => result.status === 'rejected')
  t.equal(
    failed.length,
    0,
    `${failed.length} lookups failed${failed.length > 0 ? `: ${String((failed[0] as PromiseRejectedResult).reason)}` : ''}`,
  )
  t.same(
    settled
      .map((result, i) => (result.status === 'fulfilled' ? (i % 2 === 0 ? String(result.value) : result.value) : 'failed'))
      .slice(0, 4),
    ['x', undefined, 'x', undefined],
  )
})
