// What a cached blob GET through the mirror costs on S3: no HEAD (the size comes with the
// GetObject), and the cache is opened once, not looked up first and then opened.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { startDistribution, distributionUnavailable } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { seedImage, sha256 } from '../helpers/seed.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)
process.env.FERRY_TEST_STORAGE = 's3'

/** ferry_storage_s3_requests_total by operation. */
async function s3Requests(ferry: MirrorServer): Promise<Record<string, number>> {
  const text = await (await fetch(`${ferry.url}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const m of text.matchAll(/^ferry_storage_s3_requests_total\{operation="(\w+)"\} (\d+)/gm)) counts[m[1]!] = Number(m[2])
  return counts
}

t.test('a cached blob GET through the mirror: one GetObject for the bytes and no HEAD', async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const ferry = await startMirrorServer({ upstreams: [upstreamConfig('up', upstream.url)], defaultUpstream: 'up' })
  t.teardown(() => ferry.close())
  const image = await seedImage(upstream.url, 'team/app', 'v1', { layers: [randomBytes(300_000)] })
  const layer = image.layers[0]!
  const url = `${ferry.url}/v2/team/app/blobs/${layer.digest}`
  const cold = await fetch(url)
  t.equal(sha256(Buffer.from(await cold.arrayBuffer())), layer.digest, 'cold pull byte-exact')
  await eventually(
    async () => (await ferry.composed.app.inject({ url: '/metrics' })).body.includes('ferry_mirror_blob_fills_in_flight 0'),
    {
      message: 'the fill settled',
    },
  )
  await upstream.stop()

  const before = await s3Requests(ferry)
  const cached = await fetch(url)
  t.equal(cached.status, 200)
  t.equal(sha256(Buffer.from(await cached.arrayBuffer())), layer.digest, 'cached pull byte-exact, the upstream gone')
  const after = await s3Requests(ferry)
  const delta = (operation: string): number => (after[operation] ?? 0) - (before[operation] ?? 0)
  t.equal(delta('HeadObject'), 0, 'no HEAD: the size comes with the bytes')
  t.ok(delta('GetObject') <= 3, `3 GETs at most: the repository's link (a miss), the cache's, the blob (${delta('GetObject')})`)
  t.same(
    Object.keys(after).filter((operation) => delta(operation) > 0 && operation !== 'GetObject'),
    [],
    'nothing but GETs',
  )
})
