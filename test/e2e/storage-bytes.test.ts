// ferry_storage_bytes{kind,upstream} is kept current between walks of storage: a push and a
// mirrored pull show up on /metrics at once (no eviction pass or `du` needed), a blob pushed again
// under another name is not counted twice, and the running totals agree with a walk of storage.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { distributionUnavailable } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startSeededMirror } from '../helpers/seeded-mirror.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'

const unavailable = distributionUnavailable()
if (unavailable) t.plan(0, unavailable)
else
  t.test('storage bytes by kind follow pushes and fills without a walk', async (t) => {
    const { upstream, ferry, seeder } = await startSeededMirror(t)
    const bytesOf = async (kind: string, upstreamName = ''): Promise<number | undefined> => {
      const text = await fetch(`${ferry.url}/metrics`).then((r) => r.text())
      const line = text.split('\n').find((l) => l.startsWith(`ferry_storage_bytes{kind="${kind}",upstream="${upstreamName}"} `))
      return line === undefined ? undefined : Number(line.split(' ')[1])
    }
    // The helper starts no housekeeping: storage is walked only when the test asks (usage() at the end).
    const total = (image: SeededImage): number => image.manifest.size + image.config.size + image.layers.reduce((sum, l) => sum + l.size, 0)

    const pushed = await seedImage(ferry.url, 'own/app', 'v1', { layers: [randomBytes(300 * 1024), randomBytes(200 * 1024)], auth: seeder })
    t.equal(await bytesOf('pushed'), total(pushed), 'a push counts at once')

    const mirrored = await seedImage(upstream.url, 'lib/tool', 'v1', { layers: [randomBytes(400 * 1024)] })
    const manifest = await fetch(`${ferry.url}/v2/lib/tool/manifests/v1`, { headers: { accept: mirrored.manifest.mediaType } })
    t.equal(manifest.status, 200)
    await manifest.arrayBuffer()
    for (const blob of [mirrored.config, ...mirrored.layers]) {
      const res = await fetch(`${ferry.url}/v2/lib/tool/blobs/${blob.digest}`)
      t.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest)
    }
    // A fill's commit ends just after its last byte went out.
    await eventually(async () => (await bytesOf('cached', 'gcr.io')) === total(mirrored), { message: 'the mirrored image counted' })

    // The same blobs under another name: no new bytes on the volume.
    const layers = pushed.layers.map((layer) => layer.bytes)
    const again = await seedImage(ferry.url, 'own/copy', 'v1', { layers, auth: seeder })
    const newBytes = again.manifest.size + again.config.size // a new nonce in the config, a new manifest
    t.equal(await bytesOf('pushed'), total(pushed) + newBytes, 'blobs stored already are not counted twice')

    const running = { pushed: await bytesOf('pushed'), cached: await bytesOf('cached', 'gcr.io') }
    const walked = await ferry.composed.lifecycle.usage()
    t.same(
      running,
      { pushed: walked.pushedBytes, cached: walked.cachedByUpstream.get('gcr.io') },
      'the running totals agree with a walk of storage',
    )
  })
