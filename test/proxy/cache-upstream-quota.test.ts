// A per-upstream quota (cache.upstreams[]): pulls through one upstream are evicted to its limit,
// while another upstream's cached images, under no limit of their own, stay.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'

const MiB = 1024 * 1024
const accept = 'application/vnd.oci.image.manifest.v1+json'
const unavailable = distributionUnavailable()
if (unavailable) t.plan(0, unavailable)
else
  t.test('one upstream is held to its own quota, the other is left alone', async (t) => {
    const upstream = await startDistribution()
    t.teardown(() => upstream.stop())
    const ferry = await startMirrorServer(
      { upstreams: [upstreamConfig('gcr.io', upstream.url), upstreamConfig('docker.io', upstream.url)], defaultUpstream: 'gcr.io' },
      {
        auth: { anonymousPull: ['**'] },
        configure: (config) => {
          config.cache.upstreams = [{ name: 'docker.io', maxSize: Math.round(1.5 * MiB) }]
        },
      },
    )
    t.teardown(() => ferry.close())
    const images: SeededImage[] = []
    for (let i = 0; i < 5; i++) images.push(await seedImage(upstream.url, `lib/i${i}`, 'v1', { layers: [randomBytes(MiB)] }))
    const pull = async (i: number, ns: string): Promise<void> => {
      const manifest = await fetch(`${ferry.url}/v2/lib/i${i}/manifests/v1?ns=${ns}`, { headers: { accept } })
      t.equal(manifest.status, 200)
      await manifest.arrayBuffer()
      for (const blob of [images[i]!.config, ...images[i]!.layers]) {
        const res = await fetch(`${ferry.url}/v2/lib/i${i}/blobs/${blob.digest}?ns=${ns}`)
        t.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest)
      }
    }
    for (const i of [0, 1]) await pull(i, 'gcr.io')
    for (const i of [2, 3, 4]) await pull(i, 'docker.io')
    const usage = await eventually(async () => {
      const measured = await ferry.composed.lifecycle.usage()
      return (measured.cachedByUpstream.get('docker.io') ?? 0) <= 1.5 * MiB ? measured : undefined
    })
    t.comment(`cached: gcr.io ${usage.cachedByUpstream.get('gcr.io')} bytes, docker.io ${usage.cachedByUpstream.get('docker.io')} bytes`)
    t.ok((usage.cachedByUpstream.get('gcr.io') ?? 0) >= 2 * MiB, 'gcr.io keeps both its images')
    const inventory = await ferry.composed.lifecycle.inventory()
    const cached = inventory.repositories.filter((r) => r.manifests.size > 0).map((r) => r.name)
    t.same(cached.sort(), ['_cache/docker.io/lib/i4', '_cache/gcr.io/lib/i0', '_cache/gcr.io/lib/i1'], 'docker.io keeps its newest image')
  })
