// GC on the S3 driver (s3rver in-process): listing the bucket is fine in a background job. A
// deleted image's blobs go once past the grace period; a kept image stays whole.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { eventually } from '../../helpers/eventually.js'
import { htpasswdLine } from '../../helpers/htpasswd.js'
import { startMirrorServer, upstreamConfig } from '../../helpers/mirror-server.js'
import { seedImage, sha256 } from '../../helpers/seed.js'

t.test('GC on S3 sweeps a deleted image and keeps the tagged one', async (t) => {
  const seeder = { username: 'seeder', password: 'seeder-pw' }
  const seederHash = (await htpasswdLine(seeder.username, seeder.password)).split(':')[1]!
  const auth = { authorization: `Basic ${Buffer.from(`${seeder.username}:${seeder.password}`).toString('base64')}` }
  process.env.FERRY_TEST_STORAGE = 's3'
  const ferry = await startMirrorServer(
    { upstreams: [upstreamConfig('gcr.io', 'http://127.0.0.1:9')], defaultUpstream: 'gcr.io' },
    {
      auth: {
        users: [{ name: seeder.username, password: seederHash, groups: [] }],
        roles: [{ subjects: [seeder.username], namespaces: ['**'], role: 'admin' }],
      },
      configure: (config) => {
        config.maintenance.gc.grace = 1000
      },
    },
  )
  delete process.env.FERRY_TEST_STORAGE
  t.teardown(() => ferry.close())
  const kept = await seedImage(ferry.url, 'team/kept', 'v1', { layers: [randomBytes(100_000)], auth: seeder })
  const gone = await seedImage(ferry.url, 'team/gone', 'v1', { layers: [randomBytes(100_000)], auth: seeder })
  const deleted = await fetch(`${ferry.url}/v2/team/gone/manifests/${gone.manifest.digest}`, { method: 'DELETE', headers: auth })
  t.equal(deleted.status, 202)
  const garbage = [gone.manifest.digest, gone.config.digest, gone.layers[0]!.digest].sort()

  // Past the grace period, the dry run lists exactly the deleted image's blobs.
  const dry = await eventually(async () => {
    const report = await ferry.composed.lifecycle.gc(true)
    return report.blobs.length >= garbage.length ? report : undefined
  })
  t.same(dry.blobs.map((b) => b.digest).sort(), garbage)
  const report = await ferry.composed.lifecycle.gc(false)
  t.same(report.blobs.map((b) => b.digest).sort(), garbage, 'swept')
  t.same((await ferry.composed.lifecycle.gc(true)).blobs, [], 'nothing left to sweep')
  for (const blob of [kept.config, ...kept.layers]) {
    const res = await fetch(`${ferry.url}/v2/team/kept/blobs/${blob.digest}`, { headers: auth })
    t.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest, 'the kept image is whole')
  }
  const res = await fetch(`${ferry.url}/v2/team/gone/blobs/${gone.layers[0]!.digest}`, { headers: auth })
  // The emptied repository is no longer a pushed one: the (unreachable) upstream is asked instead.
  t.not(res.status, 200, 'the swept layer is no longer served')
  await res.arrayBuffer()
})
