// The registry API over the S3 driver (s3rver): monolithic and chunked pushes of blobs larger
// than one part, byte-exact pulls and ranges, manifests by tag and digest, tag listing, the
// catalog, and cancelled uploads. The push and pull suites also run on S3 with FERRY_TEST_STORAGE=s3.
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js'
import { startTestServer, type TestServer } from '../helpers/server.js'
import { imageManifest, makeBlob, pushBlob, pushManifest, randomConfig, request, type Blob } from '../helpers/oci.js'
import { PseudoRandomSource } from '../helpers/pseudo-random.js'

const MiB = 1024 * 1024
const repo = 's3/app'

function bytesOf(length: number, seed: string): Buffer {
  const source = new PseudoRandomSource(seed)
  const chunks: Buffer[] = []
  for (let left = length; left > 0; left -= MiB) chunks.push(source.next(Math.min(left, MiB)))
  return Buffer.concat(chunks)
}

const summary = (requests: string[]): string =>
  [...new Set(requests)].map((r) => `${r} ${requests.filter((x) => x === r).length}`).join(', ')

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

let server: TestServer
let s3: S3TestServer
t.before(async () => {
  server = await startTestServer({ storage: 's3', s3: (s3 = await startS3Server()) })
})
t.teardown(async () => {
  await server?.close()
  await s3?.close()
})

async function expectBlobBack(t: Test, blob: Blob): Promise<void> {
  const res = await request(server, `/v2/${repo}/blobs/${blob.digest}`)
  t.equal(res.status, 200)
  t.equal(res.headers.get('docker-content-digest'), blob.digest)
  const body = Buffer.from(await res.arrayBuffer())
  t.equal(body.length, blob.bytes.length)
  t.equal(sha256(body), sha256(blob.bytes), 'byte-exact')
}

/** POST, then PATCH each chunk with its Content-Range, then PUT with the digest (and `last`). */
async function pushChunked(blob: Blob, chunkSize: number, last?: Buffer): Promise<Response> {
  const start = await request(server, `/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  if (start.status !== 202) throw new Error(`POST answered ${start.status}`)
  let location = new URL(start.headers.get('location')!, server.url)
  const body = last === undefined ? blob.bytes : blob.bytes.subarray(0, blob.bytes.length - last.length)
  for (let offset = 0; offset < body.length; offset += chunkSize) {
    const chunk = body.subarray(offset, offset + chunkSize)
    const res = await fetch(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
      body: chunk,
    })
    if (res.status !== 202) throw new Error(`PATCH answered ${res.status}: ${await res.text()}`)
    if (res.headers.get('range') !== `0-${offset + chunk.length - 1}`) throw new Error(`PATCH Range ${res.headers.get('range')}`)
    location = new URL(res.headers.get('location')!, server.url)
  }
  location.searchParams.set('digest', blob.digest)
  return fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, ...(last ? { body: last } : {}) })
}

t.test('a 20 MiB monolithic push comes back byte-exact, and ranges read across parts', async (t) => {
  const blob = makeBlob(bytesOf(20 * MiB, 'monolithic'))
  await pushBlob(server, repo, blob)
  await expectBlobBack(t, blob)
  const head = await request(server, `/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('content-length'), String(blob.bytes.length))
  const [start, end] = [8 * MiB - 3, 8 * MiB + 2]
  const ranged = await request(server, `/v2/${repo}/blobs/${blob.digest}`, { headers: { range: `bytes=${start}-${end}` } })
  t.equal(ranged.status, 206)
  t.same(Buffer.from(await ranged.arrayBuffer()), blob.bytes.subarray(start, end + 1))
})

t.test('a 100 MiB monolithic push goes straight to its content address in 10 S3 requests', async (t) => {
  const blob = makeBlob(bytesOf(100 * MiB, 'counted'))
  s3.requests.length = 0
  await pushBlob(server, repo, blob)
  const count = (operation: string): number => s3.requests.filter((r) => r === operation).length
  t.comment(`S3 requests of a 100 MiB monolithic push: ${s3.requests.length} (${summary(s3.requests)})`)
  // 7 equal 16 MiB parts, completed once the digest matched, then the repository's link.
  t.same(s3.requests, ['CreateMultipartUpload', ...Array<string>(7).fill('UploadPart'), 'CompleteMultipartUpload', 'PutObject'])
  t.equal(count('CopyObject') + count('UploadPartCopy'), 0, 'no server-side copy')
  const metrics = await (await request(server, '/metrics')).text()
  t.match(metrics, /ferry_storage_s3_requests_total\{operation="UploadPart"\} \d+/, 'counted on /metrics')
  await expectBlobBack(t, blob)
})

t.test('a wrong digest is refused before anything becomes visible', async (t) => {
  const blob = makeBlob(bytesOf(20 * MiB, 'wrong digest'))
  const other = makeBlob(bytesOf(10, 'other'))
  s3.requests.length = 0
  const res = await request(server, `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(other.digest)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: blob.bytes,
  })
  t.equal(res.status, 400)
  t.notOk(s3.requests.includes('CompleteMultipartUpload'), 'never completed')
  t.ok(s3.requests.includes('AbortMultipartUpload'), `aborted (${summary(s3.requests)})`)
  t.equal((await request(server, `/v2/${repo}/blobs/${other.digest}`, { method: 'HEAD' })).status, 404)
})

t.test('two concurrent pushes of one blob both succeed (no conditional writes on s3rver: the fallback)', async (t) => {
  const blob = makeBlob(bytesOf(18 * MiB, 'concurrent'))
  const statuses = await Promise.all(
    ['a', 'b', 'c'].map(async (suffix) => {
      const res = await request(server, `/v2/${repo}-${suffix}/blobs/uploads/?digest=${encodeURIComponent(blob.digest)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: blob.bytes,
      })
      return res.status
    }),
  )
  t.same(statuses, [201, 201, 201])
  const back = await request(server, `/v2/${repo}-b/blobs/${blob.digest}`)
  t.equal(sha256(Buffer.from(await back.arrayBuffer())), sha256(blob.bytes))
})

t.test('chunked pushes of any chunk size commit the whole blob', async (t) => {
  const large = makeBlob(bytesOf(20 * MiB + 5, 'chunked'))
  const res = await pushChunked(large, 5 * MiB, large.bytes.subarray(20 * MiB - 100))
  t.equal(res.status, 201, await res.text())
  await expectBlobBack(t, large)
  const small = makeBlob(bytesOf(1000, 'small chunks'))
  t.equal((await pushChunked(small, 7)).status, 201, 'many tiny chunks')
  await expectBlobBack(t, small)
  const wrong = makeBlob(bytesOf(3 * MiB, 'wrong'))
  const mismatch = await pushChunked({ ...wrong, digest: small.digest.replace(/.$/, (c) => (c === '0' ? '1' : '0')) }, MiB)
  t.equal(mismatch.status, 400, 'a wrong digest is refused')
})

t.test('manifests by tag and digest, tag listing and the catalog', async (t) => {
  const config = randomConfig()
  const layer = makeBlob(bytesOf(MiB, 'layer'))
  for (const blob of [config, layer]) await pushBlob(server, 's3/image', blob)
  const manifest = imageManifest({ config, layers: [layer] })
  for (const tag of ['v1', 'latest']) await pushManifest(server, 's3/image', tag, manifest)
  for (const reference of ['v1', manifest.digest]) {
    const res = await request(server, `/v2/s3/image/manifests/${reference}`, { headers: { accept: manifest.mediaType } })
    t.equal(res.status, 200, reference)
    t.equal(res.headers.get('docker-content-digest'), manifest.digest)
    t.same(Buffer.from(await res.arrayBuffer()), manifest.bytes, `${reference}: byte-exact`)
  }
  const tags = await request(server, '/v2/s3/image/tags/list')
  t.same(await tags.json(), { name: 's3/image', tags: ['latest', 'v1'] })
  const catalog = (await (await request(server, '/v2/_catalog')).json()) as { repositories: string[] }
  t.ok(catalog.repositories.includes('s3/image'), JSON.stringify(catalog))
  t.equal((await request(server, '/v2/s3/image/manifests/v1', { method: 'DELETE' })).status, 202)
  t.same(await (await request(server, '/v2/s3/image/tags/list')).json(), { name: 's3/image', tags: ['latest'] })
})

t.test('a cancelled upload is gone', async (t) => {
  const start = await request(server, `/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  const location = new URL(start.headers.get('location')!, server.url)
  await fetch(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(100, 1) })
  t.equal((await fetch(location, { method: 'DELETE' })).status, 204)
  t.equal((await fetch(location)).status, 404)
})

t.test('no LIST on any request path; a warm manifest GET costs 0 S3 requests, a blob HEAD 2, a blob GET 2', async (t) => {
  const name = 's3/nolist'
  const config = randomConfig()
  const layer = makeBlob(bytesOf(MiB, 'nolist'))
  s3.requests.length = 0
  for (const blob of [config, layer]) await pushBlob(server, name, blob)
  const manifest = imageManifest({ config, layers: [layer] })
  for (const tag of ['a', 'b']) await pushManifest(server, name, tag, manifest)
  const referrer = imageManifest({ config, layers: [], subject: manifest })
  await pushManifest(server, name, referrer.digest, referrer)
  const accept = { accept: manifest.mediaType }

  // Warm: inside the metadata TTL, tag → digest → descriptor → bytes are all in memory.
  await request(server, `/v2/${name}/manifests/a`, { headers: accept })
  const before = s3.requests.length
  for (let i = 0; i < 5; i++) {
    const res = await request(server, `/v2/${name}/manifests/a`, { headers: accept })
    t.equal(res.status, 200)
    await res.arrayBuffer()
  }
  t.equal(s3.requests.length - before, 0, 'warm manifest GETs by tag: no S3 request')

  let mark = s3.requests.length
  t.equal((await request(server, `/v2/${name}/blobs/${layer.digest}`, { method: 'HEAD' })).status, 200)
  t.same(s3.requests.slice(mark), ['GetObject', 'HeadObject'], 'blob HEAD: the link, then the blob')
  mark = s3.requests.length
  const absent = makeBlob(Buffer.from('absent'))
  t.equal((await request(server, `/v2/${name}/blobs/${absent.digest}`, { method: 'HEAD' })).status, 404)
  t.same(s3.requests.slice(mark), ['GetObject'], 'blob HEAD miss: one GET of the link')
  mark = s3.requests.length
  const pulled = await request(server, `/v2/${name}/blobs/${layer.digest}`)
  t.equal(pulled.headers.get('content-length'), String(layer.bytes.length))
  t.equal(sha256(Buffer.from(await pulled.arrayBuffer())), sha256(layer.bytes), 'blob GET: byte-exact')
  t.same(s3.requests.slice(mark), ['GetObject', 'GetObject'], 'blob GET: the link, then the blob with its size (no HEAD)')
  mark = s3.requests.length
  const ranged = await request(server, `/v2/${name}/blobs/${layer.digest}`, { headers: { range: 'bytes=10-19' } })
  t.same(Buffer.from(await ranged.arrayBuffer()), layer.bytes.subarray(10, 20))
  t.same(s3.requests.slice(mark), ['GetObject', 'HeadObject', 'GetObject'], 'ranged blob GET: the link, the size, one ranged GET')

  t.same(await (await request(server, `/v2/${name}/tags/list`)).json(), { name, tags: ['a', 'b'] })
  const referrers = (await (await request(server, `/v2/${name}/referrers/${manifest.digest}`)).json()) as { manifests: unknown[] }
  t.equal(referrers.manifests.length, 1)
  const catalog = (await (await request(server, '/v2/_catalog')).json()) as { repositories: string[] }
  t.ok(catalog.repositories.includes(name))
  t.equal((await request(server, `/v2/s3/never-pushed/tags/list`)).status, 404)
  t.equal((await request(server, `/v2/${name}/manifests/b`, { method: 'DELETE' })).status, 202)
  t.equal((await request(server, `/v2/${name}/manifests/${referrer.digest}`, { method: 'DELETE' })).status, 202)
  t.equal((await request(server, `/v2/${name}/blobs/${layer.digest}`, { method: 'DELETE' })).status, 202)
  t.same(await (await request(server, `/v2/${name}/tags/list`)).json(), { name, tags: ['a'] })
  const after = (await (await request(server, `/v2/${name}/referrers/${manifest.digest}`)).json()) as { manifests: unknown[] }
  t.equal(after.manifests.length, 0)
  const cancelled = await request(server, `/v2/${name}/blobs/uploads/`, { method: 'POST' })
  t.equal((await fetch(new URL(cancelled.headers.get('location')!, server.url), { method: 'DELETE' })).status, 204)
  t.same(
    s3.requests.filter((r) => r === 'ListObjects'),
    [],
    `no LIST (${summary(s3.requests)})`,
  )
})
