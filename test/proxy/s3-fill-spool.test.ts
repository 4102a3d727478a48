// A cold fill on S3 feeds its clients at the upstream's pace, not at the pace of the multipart
// upload: the bytes are spooled locally (storage.s3.spoolPath, bounded by spoolSize) and the
// upload reads the spool. Seen from outside: with every UploadPart and the CompleteMultipartUpload
// held by the S3 endpoint, a cold pull still gets the whole blob, byte-exact; once released, the
// blob lands in the bucket and the spool file is gone. Spool files of dead processes go at start-up.
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { S3Driver } from '../../src/storage/driver/s3.js'
import { blobDataPath } from '../../src/storage/paths.js'
import type { Digest } from '../../src/core/digest.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { PseudoRandomSource } from '../helpers/pseudo-random.js'
import { startS3FaultProxy } from '../helpers/s3-fault-proxy.js'
import { startS3Server } from '../helpers/s3-server.js'
import { seedImage } from '../helpers/seed.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)

const MiB = 1024 * 1024

t.test('a cold pull on S3 gets the whole blob while the multipart upload is held; the blob lands after', async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  // Larger than the parts an upload keeps in flight (3 × 16 MiB) plus the one it fills: without a
  // spool the fill stops reading the upstream while the store holds the parts.
  const source = new PseudoRandomSource('spool')
  const blob = Buffer.concat(Array.from({ length: 72 }, () => source.next(MiB)))
  const image = await seedImage(upstream.url, 'spool/app', 'v1', { layers: [blob] })
  const digest = image.layers[0]!.digest as Digest

  const s3 = await startS3Server()
  t.teardown(() => s3.close())
  const proxy = await startS3FaultProxy(s3.endpoint)
  t.teardown(() => proxy.close())
  const spoolDir = await mkdtemp(join(tmpdir(), 'ferry-spool-test-'))
  t.teardown(() => rm(spoolDir, { recursive: true, force: true }))
  // A dead process's spool file (no pid is this high) goes at start-up; a file not named like one stays.
  await writeFile(join(spoolDir, '999999999.1.spool'), 'left over')
  await writeFile(join(spoolDir, 'not-a-spool'), 'kept')
  const ferry = await startMirrorServer(
    { upstreams: [upstreamConfig('up', upstream.url)], defaultUpstream: 'up', namespaces: [] },
    {
      auth: { anonymousPull: ['**'] },
      configure: (config) => {
        const s3Config = { ...config.storage.s3, ...s3.driverOptions('spool'), endpoint: proxy.endpoint, redirectMs: undefined }
        config.storage = { ...config.storage, driver: 's3', s3: { ...s3Config, spoolPath: spoolDir, spoolBytes: 256 * MiB } }
      },
    },
  )
  t.teardown(() => ferry.close())
  t.same(await readdir(spoolDir), ['not-a-spool'], "a dead process's spool file was removed at start-up")

  proxy.hold('UploadPart')
  proxy.hold('CompleteMultipartUpload')
  const res = await request(`${ferry.url}/v2/spool/app/blobs/${digest}`)
  t.equal(res.statusCode, 200)
  const body = Buffer.from(await res.body.arrayBuffer())
  t.equal(body.length, blob.length)
  t.equal(`sha256:${createHash('sha256').update(body).digest('hex')}`, digest, 'byte-exact')
  t.ok(proxy.held('UploadPart') > 0, 'parts of the upload were still held by the store when the client had every byte')
  t.notOk(proxy.requests.includes('CompleteMultipartUpload'), 'the multipart upload was not completed then')
  t.equal((await readdir(spoolDir)).filter((name) => name.endsWith('.spool')).length, 1, 'the fill spooled locally')

  proxy.release('UploadPart')
  proxy.release('CompleteMultipartUpload')
  const bucket = await S3Driver.create(s3.driverOptions('spool'))
  // s3rver writes a completed upload's file after answering: wait for the whole of it.
  const landed = async (): Promise<boolean> => (await bucket.stat(blobDataPath(digest), { fileOnly: true }))?.size === blob.length
  t.ok(await eventually(landed, { message: 'the blob landed in the bucket', timeoutMs: 60_000 }), 'the blob landed in the bucket')
  await eventually(async () => (await readdir(spoolDir)).length === 1, {
    message: 'the spool file is removed once the fill settled',
    timeoutMs: 60_000,
  })
})
