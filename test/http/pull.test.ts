// Pull workflow over HTTP against a real server (conformance 01_pull + checklist §2, §3).
import t from 'tap'
import { startTestServer, type TestServer } from '../helpers/server.js'
import {
  emptyDigest,
  expectError,
  imageIndex,
  makeBlob,
  mediaTypes,
  pushBlob,
  pushImage,
  pushManifest,
  randomBlob,
  type Blob,
  type Image,
  type Manifest,
  randomDigest,
  rawHttp,
  request,
} from '../helpers/oci.js'

const repo = 'conformance/pull'
let server: TestServer
let image: Image
let index: Manifest
const blob2048: Blob = randomBlob(2048)

t.before(async () => {
  server = await startTestServer()
  image = await pushImage(server, repo, 'tagtest0')
  index = imageIndex({ manifests: [image.manifest] })
  await pushManifest(server, repo, 'multi', index)
  await pushBlob(server, repo, blob2048)
})
t.teardown(() => server?.close())

t.test('GET /v2/ answers 200 with the API version header', async (t) => {
  for (const path of ['/v2/', '/v2']) {
    const res = await request(server, path)
    t.equal(res.status, 200, path)
    t.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0')
    t.equal(res.headers.get('content-type'), 'application/json; charset=utf-8', 'JSON, as fastify serialises {}')
    t.equal(res.headers.get('content-length'), '2')
    t.same(await res.json(), {})
  }
  const head = await request(server, '/v2/', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('docker-distribution-api-version'), 'registry/2.0')
})

t.test('manifest GET by tag and by digest returns the exact bytes and headers', async (t) => {
  const { manifest } = image
  for (const reference of ['tagtest0', manifest.digest]) {
    const res = await request(server, `/v2/${repo}/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } })
    t.equal(res.status, 200, reference)
    t.equal(res.headers.get('content-type'), mediaTypes.ociManifest, 'Content-Type is exactly the mediaType')
    t.equal(res.headers.get('content-length'), String(manifest.size))
    t.equal(res.headers.get('docker-content-digest'), manifest.digest)
    t.equal(res.headers.get('etag'), `"${manifest.digest}"`)
    t.same(Buffer.from(await res.arrayBuffer()), manifest.bytes, 'byte-identical body')
  }
})

t.test('manifest HEAD carries the headers and no body', async (t) => {
  const { manifest } = image
  for (const reference of ['tagtest0', manifest.digest]) {
    const res = await request(server, `/v2/${repo}/manifests/${reference}`, { method: 'HEAD' })
    t.equal(res.status, 200, reference)
    t.equal(res.headers.get('content-type'), mediaTypes.ociManifest)
    t.equal(res.headers.get('content-length'), String(manifest.size))
    t.equal(res.headers.get('docker-content-digest'), manifest.digest)
    t.equal((await res.arrayBuffer()).byteLength, 0)
  }
  const res = await request(server, `/v2/${repo}/manifests/multi`, { method: 'HEAD' })
  t.equal(res.headers.get('content-type'), mediaTypes.ociIndex, 'an index HEAD names the index type')
  t.equal(res.headers.get('content-length'), String(index.size))
})

t.test('If-None-Match with the ETag answers 304 without a body', async (t) => {
  const { manifest } = image
  for (const method of ['GET', 'HEAD']) {
    const res = await request(server, `/v2/${repo}/manifests/tagtest0`, { method, headers: { 'if-none-match': `"${manifest.digest}"` } })
    t.equal(res.status, 304, method)
    t.equal(res.headers.get('docker-content-digest'), manifest.digest)
    t.equal((await res.arrayBuffer()).byteLength, 0)
  }
  const other = await request(server, `/v2/${repo}/manifests/tagtest0`, { headers: { 'if-none-match': `"${randomDigest()}"` } })
  t.equal(other.status, 200, 'another ETag gets the manifest')
  await other.arrayBuffer()
})

t.test('Accept negotiation', async (t) => {
  const path = `/v2/${repo}/manifests/multi`
  const only = await request(server, path, { headers: { accept: mediaTypes.dockerManifest } })
  await expectError(t, only, 404, 'MANIFEST_UNKNOWN', 'an index when only docker v2 is accepted')

  for (const accept of [
    '*/*',
    `${mediaTypes.dockerManifest}, ${mediaTypes.ociIndex}`,
    'application/json',
    `${mediaTypes.ociIndex};q=0.5`,
  ]) {
    const res = await request(server, path, { headers: { accept } })
    t.equal(res.status, 200, `Accept: ${accept}`)
    t.equal(res.headers.get('content-type'), mediaTypes.ociIndex)
    t.same(Buffer.from(await res.arrayBuffer()), index.bytes)
  }
  const none = await request(server, path)
  t.equal(none.status, 200, 'no Accept header at all')
  await none.arrayBuffer()

  // Two separate Accept lines, as the newer conformance client sends them.
  const twoLines = await rawHttp(
    server,
    `GET ${path} HTTP/1.1\r\nHost: ${server.host}\r\nAccept: ${mediaTypes.dockerManifest}\r\n` +
      `Accept: ${mediaTypes.ociIndex}\r\nConnection: close\r\n\r\n`,
  )
  t.equal(twoLines.status, 200, 'the second Accept line counts')
  t.equal(twoLines.header('content-type'), mediaTypes.ociIndex)
  t.equal(twoLines.header('content-length'), String(index.size))
  t.same(twoLines.body, index.bytes)

  const twoLinesMissing = await rawHttp(
    server,
    `GET ${path} HTTP/1.1\r\nHost: ${server.host}\r\nAccept: ${mediaTypes.dockerManifest}\r\n` +
      `Accept: ${mediaTypes.ociManifest}\r\nConnection: close\r\n\r\n`,
  )
  t.equal(twoLinesMissing.status, 404, 'neither line names the index type')
})

t.test('malformed and unknown manifest references', async (t) => {
  for (const method of ['GET', 'HEAD']) {
    const res = await request(server, `/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`, { method })
    t.equal(res.status, 404, `${method} of a malformed tag is a plain 404`)
    await res.arrayBuffer()
  }
  await expectError(t, await request(server, `/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`), 404, 'MANIFEST_UNKNOWN')

  const wrong = await request(server, `/v2/${repo}/manifests/sha256:totallywrong`, {
    headers: { 'content-type': 'application/x-odd' },
  })
  await expectError(t, wrong, 400, 'DIGEST_INVALID', 'sha256:totallywrong')
  await expectError(t, await request(server, `/v2/${repo}/manifests/sha256:baddigeststring`), 400, 'DIGEST_INVALID')
  await expectError(t, await request(server, `/v2/${repo}/manifests/md5:${'a'.repeat(32)}`), 400, 'DIGEST_INVALID', 'unsupported algorithm')

  const unknown = await request(server, `/v2/${repo}/manifests/${randomDigest()}`)
  t.equal(unknown.headers.get('connection'), 'keep-alive', 'an error for a request without a body keeps the connection')
  await expectError(t, unknown, 404, 'MANIFEST_UNKNOWN', 'unknown digest')
  await expectError(t, await request(server, `/v2/${repo}/manifests/${randomDigest('sha512')}`), 404, 'MANIFEST_UNKNOWN', 'unknown sha512')
  await expectError(t, await request(server, `/v2/${repo}/manifests/missing-tag`), 404, 'MANIFEST_UNKNOWN', 'unknown tag')
  await expectError(t, await request(server, `/v2/never/pushed/manifests/latest`), 404, 'MANIFEST_UNKNOWN', 'unknown repository')
  const head = await request(server, `/v2/${repo}/manifests/${randomDigest()}`, { method: 'HEAD' })
  t.equal(head.status, 404)
  t.equal((await head.arrayBuffer()).byteLength, 0, 'HEAD 404 has no body')

  const layer = image.layers[0]!
  await expectError(t, await request(server, `/v2/${repo}/manifests/${layer.digest}`), 404, 'MANIFEST_UNKNOWN', 'a blob is not a manifest')
})

t.test('blob GET and HEAD', async (t) => {
  for (const blob of [image.config, blob2048]) {
    const res = await request(server, `/v2/${repo}/blobs/${blob.digest}`)
    t.equal(res.status, 200)
    t.equal(res.headers.get('content-length'), String(blob.size))
    t.equal(res.headers.get('docker-content-digest'), blob.digest)
    t.equal(res.headers.get('accept-ranges'), 'bytes')
    t.equal(res.headers.get('content-type'), 'application/octet-stream')
    t.same(Buffer.from(await res.arrayBuffer()), blob.bytes)

    const head = await request(server, `/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' })
    t.equal(head.status, 200)
    t.equal(head.headers.get('content-length'), String(blob.size))
    t.equal(head.headers.get('docker-content-digest'), blob.digest)
    t.equal(head.headers.get('accept-ranges'), 'bytes')
    t.equal((await head.arrayBuffer()).byteLength, 0)
  }
})

t.test('sha512 blobs are served with a sha512 digest header', async (t) => {
  const blob = randomBlob(300, undefined, 'sha512')
  await pushBlob(server, repo, blob)
  const res = await request(server, `/v2/${repo}/blobs/${blob.digest}`)
  t.equal(res.status, 200)
  t.equal(res.headers.get('docker-content-digest'), blob.digest)
  t.same(Buffer.from(await res.arrayBuffer()), blob.bytes)
})

t.test('the empty blob has Content-Length 0', async (t) => {
  const empty = makeBlob('')
  t.equal(empty.digest, emptyDigest)
  await pushBlob(server, repo, empty)
  for (const method of ['GET', 'HEAD']) {
    const res = await request(server, `/v2/${repo}/blobs/${emptyDigest}`, { method })
    t.equal(res.status, 200, method)
    t.equal(res.headers.get('content-length'), '0')
    t.equal(res.headers.get('docker-content-digest'), emptyDigest)
    t.equal((await res.arrayBuffer()).byteLength, 0)
  }
})

t.test('Range requests on a 2048-byte blob', async (t) => {
  const path = `/v2/${repo}/blobs/${blob2048.digest}`
  const cases: Array<[string, number, number]> = [
    ['bytes=500-1499', 500, 1499],
    ['bytes=500-', 500, 2047],
    ['bytes=-500', 1548, 2047],
    ['bytes=2000-5000', 2000, 2047],
    ['bytes=0-0', 0, 0],
    ['bytes=2047-2047', 2047, 2047],
    ['bytes=-5000', 0, 2047],
  ]
  for (const [range, start, end] of cases) {
    const res = await request(server, path, { headers: { range } })
    t.equal(res.status, 206, range)
    t.equal(res.headers.get('content-range'), `bytes ${start}-${end}/2048`, `${range} Content-Range`)
    t.equal(res.headers.get('content-length'), String(end - start + 1), `${range} Content-Length`)
    t.equal(res.headers.get('accept-ranges'), 'bytes')
    t.same(Buffer.from(await res.arrayBuffer()), blob2048.bytes.subarray(start, end + 1), `${range} body`)
  }
  for (const range of ['bytes=500-0', 'bytes=5000-10000', 'bytes=2048-', 'bytes=-0']) {
    const res = await request(server, path, { headers: { range } })
    t.equal(res.status, 416, range)
    t.equal(res.headers.get('content-range'), 'bytes */2048', `${range} names the size`)
    await res.arrayBuffer()
  }
  for (const range of ['items=0-5', 'bytes=abc', 'bytes=-']) {
    const res = await request(server, path, { headers: { range } })
    t.equal(res.status, 200, `${range} is ignored`)
    t.equal(res.headers.get('content-length'), '2048')
    await res.arrayBuffer()
  }
  const head = await request(server, path, { method: 'HEAD', headers: { range: 'bytes=0-9' } })
  t.equal(head.headers.get('content-length'), '2048', 'HEAD reports the whole size')
})

t.test('unknown and malformed blob digests', async (t) => {
  const helloWorld = 'sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9'
  await expectError(t, await request(server, `/v2/${repo}/blobs/${helloWorld}`), 404, 'BLOB_UNKNOWN')
  const head = await request(server, `/v2/${repo}/blobs/${helloWorld}`, { method: 'HEAD' })
  t.equal(head.status, 404)
  await head.arrayBuffer()
  await expectError(t, await request(server, `/v2/${repo}/blobs/sha256:nothex`), 400, 'DIGEST_INVALID')
  await expectError(
    t,
    await request(server, `/v2/other/repo/blobs/${image.config.digest}`),
    404,
    'BLOB_UNKNOWN',
    'a blob of another repository',
  )
  await expectError(t, await request(server, `/v2/${repo}/blobs/${image.manifest.digest}`), 404, 'BLOB_UNKNOWN', 'manifests are not layers')
})
