// A cold pull over plain HTTP/1.1 gets the upstream's bytes from the fill's shared blocks as they
// arrive, not read back from the upload file after the disk has them (#18: the disk's write speed
// capped a cold pull at a third of distribution's proxy). Seen from outside: while the upstream is
// held part-way, the client already has the bytes before the hold, and none of the cold body went
// out through sendfile(2); the same blob once cached does.
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { nativeSendfile } from '../../src/transfer/native-sendfile.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startGateProxy } from '../helpers/gate-proxy.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { seedImage } from '../helpers/seed.js'

const skip = distributionUnavailable() ?? (nativeSendfile().native ? undefined : 'the sendfile helper is not built')
if (skip) t.plan(0, skip)

const MiB = 1024 * 1024

/** Sum of a counter's series, from the server's /metrics. */
async function counterTotal(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0)
}

t.test('a cold pull streams the upstream bytes from memory; the cached pull uses sendfile', async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const blob = randomBytes(6 * MiB + 5)
  const image = await seedImage(upstream.url, 'cold/pass', 'v1', { layers: [blob] })
  const digest = image.layers[0]!.digest
  const gate = await startGateProxy(upstream.url, `/blobs/${digest}`, 3 * MiB + 17)
  t.teardown(() => gate.close())
  const ferry = await startMirrorServer(
    { upstreams: [upstreamConfig('up', gate.url)], defaultUpstream: 'up', namespaces: [] },
    { auth: { anonymousPull: ['**'] }, sendfile: true },
  )
  t.teardown(() => ferry.close())
  const url = `${ferry.url}/v2/cold/pass/blobs/${digest}`

  const res = await request(url)
  t.equal(res.statusCode, 200)
  const chunks: Buffer[] = []
  let got = 0
  const reader = res.body[Symbol.asyncIterator]()
  // The first three whole blocks arrive while the upstream holds the rest back.
  while (got < 3 * MiB) {
    const next = await reader.next()
    if (next.done) break
    chunks.push(next.value as Buffer)
    got += (next.value as Buffer).length
  }
  await gate.holding
  t.equal(got, 3 * MiB, 'the bytes before the hold reached the client while the upstream held the rest')
  gate.release()
  for (let next = await reader.next(); !next.done; next = await reader.next()) chunks.push(next.value as Buffer)
  const body = Buffer.concat(chunks)
  t.equal(`sha256:${createHash('sha256').update(body).digest('hex')}`, digest, 'the cold body is the blob')

  const requests = (): Promise<number> => counterTotal(ferry.url, 'ferry_http_requests_total')
  const before = await eventually(async () => ((await requests()) >= 1 ? requests() : false), { message: 'the cold pull counted' })
  t.equal(
    await counterTotal(ferry.url, 'ferry_http_sendfile_bytes_total'),
    0,
    'no byte of the cold pull was read back from the upload file',
  )

  // Cached once the fill has landed: until then (on S3, while the upload reads the local spool) a
  // request joins the fill.
  await eventually(async () => (await counterTotal(ferry.url, 'ferry_mirror_blob_fills_in_flight')) === 0, {
    message: 'the fill landed in storage',
  })
  const cached = await request(url)
  const again = Buffer.from(await cached.body.arrayBuffer())
  t.ok(again.equals(blob), 'the cached body is the blob')
  await eventually(async () => (await requests()) > before, { message: 'the cached pull counted' })
  const byKernel = await counterTotal(ferry.url, 'ferry_http_sendfile_bytes_total')
  // On S3 (a plain-HTTP store here) the kernel splices the store's connection to the client's,
  // all but the body bytes that came in the same read as the response head (less than 64 KiB).
  if (process.env.FERRY_TEST_STORAGE === 's3')
    t.ok(byKernel > blob.length - 64 * 1024 && byKernel <= blob.length, `the kernel spliced ${byKernel} of ${blob.length} B from the store`)
  else t.equal(byKernel, blob.length, 'the cached pull went out through sendfile')
})
