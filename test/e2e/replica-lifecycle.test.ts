// In-use protection across replicas on one bucket: two servers on one s3rver bucket with a real
// redis-server. While replica B streams a cached layer to a client, an eviction pass on replica A
// (whose quota wants everything gone) keeps that image and its blob; once B's read is over and its
// mark expired, A evicts it. GC and scrub run on one replica at a time: while another holds the
// maintenance lease, A's explicit run is refused with a clear error, and runs once it is free.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import type { Digest } from '../../src/core/digest.js'
import type { Config } from '../../src/config/schema.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { startRedisServer } from '../helpers/redis-server.js'
import { startS3Server } from '../helpers/s3-server.js'
import { seedImage, sha256 } from '../helpers/seed.js'
import { missingTools } from '../helpers/tools.js'

const MiB = 1024 * 1024
const keyPrefix = 'ferry:test:fill:'
/** Where the lifecycle's keys go beside the fill leases. */
const lifecycleKeys = 'ferry:test:lifecycle:'

const unavailable = distributionUnavailable() ?? (missingTools('redis-server').length > 0 ? 'needs redis-server' : undefined)
if (unavailable) t.plan(0, unavailable)
else
  t.test('eviction and GC on one replica leave alone what another uses, and run on one replica at a time', async (t) => {
    const s3 = await startS3Server('ferry-cluster')
    t.teardown(() => s3.close())
    const redisServer = await startRedisServer()
    t.teardown(() => redisServer.stop())
    const redis = new Redis(redisServer.url)
    t.teardown(() => redis.quit())
    const upstream = await startDistribution()
    t.teardown(() => upstream.stop())
    // Larger than what socket buffers hold: B's read of it stays open while its client waits.
    const image = await seedImage(upstream.url, 'lib/app', 'v1', { layers: [randomBytes(24 * MiB)] })
    const layer = image.layers[0]!
    const storage = s3.driverOptions('shared')
    const replica = (quota?: number) =>
      startMirrorServer(
        { upstreams: [upstreamConfig('gcr.io', upstream.url)], defaultUpstream: 'gcr.io' },
        {
          auth: { anonymousPull: ['**'] },
          configure: (config: Config) => {
            config.storage = {
              ...config.storage,
              driver: 's3',
              s3: { ...storage, redirectMs: undefined, spoolPath: undefined, spoolBytes: 0 },
            }
            config.coordination = {
              redis: { url: redisServer.url, keyPrefix, caPath: undefined },
              leaseTtl: 1000,
              advertiseUrl: 'http://127.0.0.1:9',
              peer: { serverName: undefined, caPath: undefined },
            }
            if (quota !== undefined) config.cache.maxSize = { bytes: quota }
          },
        },
      )
    const a = await replica(1)
    t.teardown(() => a.close())
    const b = await replica()
    t.teardown(() => b.close())

    // Pulled through B: cached in the bucket both share.
    const manifest = await fetch(`${b.url}/v2/lib/app/manifests/v1`, { headers: { accept: image.manifest.mediaType } })
    t.equal(manifest.status, 200)
    await manifest.arrayBuffer()
    for (const blob of [image.config, layer])
      t.equal(sha256(Buffer.from(await (await fetch(`${b.url}/v2/lib/app/blobs/${blob.digest}`)).arrayBuffer())), blob.digest)
    const stored = async (): Promise<boolean> => (await a.composed.lifecycle.inventory()).blobs.has(layer.digest as Digest)
    // A fill commits just after its client's last byte.
    await eventually(stored, { message: 'the layer in the bucket' })

    // A client on B reads the first bytes of the layer, then waits.
    const reading = await fetch(`${b.url}/v2/lib/app/blobs/${layer.digest}`)
    const reader = reading.body!.getReader()
    const chunks: Uint8Array[] = []
    const first = await reader.read()
    chunks.push(first.value!)
    const evicted = await a.composed.lifecycle.evict()
    t.equal(evicted.images, 0, 'A evicts no image whose blob B is serving')
    t.ok(await stored(), 'the layer B is reading is still in the bucket')
    for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(next.value)
    t.equal(sha256(Buffer.concat(chunks)), layer.digest, "B's client got the layer whole")

    // B's mark expires a lease TTL after its read ended: then A's quota takes the image.
    await eventually(async () => (await a.composed.lifecycle.evict()).images > 0, {
      timeoutMs: 30_000,
      message: 'A evicts the image once unused',
    })
    t.notOk(await stored(), 'and deletes its layer')

    // Another replica runs GC now (it holds the maintenance lease): A's run is refused, then runs.
    await redis.set(`${lifecycleKeys}maintenance:gc`, 'other-token http://127.0.0.1:9', 'PX', 60_000)
    await t.rejects(a.composed.lifecycle.gc(false), /another replica is collecting garbage now/, 'one GC at a time across replicas')
    t.ok((await a.composed.lifecycle.gc(true)).blobs, 'a dry run needs no lease')
    await redis.del(`${lifecycleKeys}maintenance:gc`)
    t.ok((await a.composed.lifecycle.gc(false)).blobs, 'GC runs once the other replica is done')
  })
