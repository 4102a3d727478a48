// Push workflow over HTTP against a real server (conformance 02_push + checklist §4): blob
// uploads (monolithic, POST+PUT, chunked, streamed), verification, mounts, manifest PUT.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import t from 'tap'
import type { Test } from 'tap'
import { freshServer, startTestServer, type TestServer } from '../helpers/server.js'
import {
  configType,
  descriptorOf,
  emptyDigest,
  encodeManifest,
  expectError,
  imageIndex,
  imageManifest,
  makeBlob,
  mediaTypes,
  pushBlob,
  pushImage,
  pushManifest,
  putManifest,
  randomBlob,
  randomConfig,
  randomDigest,
  rawHttp,
  request,
  storedBlobFiles,
  storedFiles,
  type Blob,
} from '../helpers/oci.js'
import { eventually } from '../helpers/eventually.js'

let server: TestServer
t.before(async () => {
  server = await startTestServer()
})
t.teardown(() => server?.close())

/** A server of its own, for tests that inspect the whole storage tree. */
/** The Location of a response resolved against the server, so queries can be merged in. */
function locationUrl(t: Test, res: Response, srv = server): URL {
  const location = res.headers.get('location')
  t.ok(location, `${res.status} carries a Location`)
  return new URL(location ?? '/', srv.url)
}

async function startSession(t: Test, repo: string, srv = server): Promise<URL> {
  const res = await request(srv, `/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } })
  t.equal(res.status, 202, 'POST starts an upload')
  t.equal(res.headers.get('range'), '0-0', 'an empty session reports Range 0-0')
  await res.arrayBuffer()
  const url = locationUrl(t, res, srv)
  t.match(url.pathname, new RegExp(`^/v2/${repo}/blobs/uploads/[0-9a-f-]{36}$`))
  return url
}

function withDigest(url: URL, digest: string): string {
  const next = new URL(url)
  next.searchParams.set('digest', digest) // re-encodes `:` as %3A, as the newer conformance client does
  return next.toString()
}

async function patch(url: URL | string, body: Buffer, range?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
  if (range !== undefined) headers['content-range'] = range
  const res = await fetch(url, { method: 'PATCH', headers, body })
  await res.arrayBuffer()
  return res
}

async function expectBlob(t: Test, repo: string, blob: Blob, srv = server): Promise<void> {
  const res = await request(srv, `/v2/${repo}/blobs/${blob.digest}`)
  t.equal(res.status, 200, `${blob.digest.slice(0, 16)} is pullable`)
  t.same(Buffer.from(await res.arrayBuffer()), blob.bytes, 'with the pushed bytes')
}

async function expectNoBlob(t: Test, repo: string, digest: string, srv = server): Promise<void> {
  const res = await request(srv, `/v2/${repo}/blobs/${digest}`)
  t.equal(res.status, 404, `${digest.slice(0, 16)} is not pullable`)
  await res.arrayBuffer()
}

/** Upload session folders of a repository on disk. */
async function uploadDirs(srv: TestServer, repo: string): Promise<string[]> {
  return srv.driver.list(`repositories/${repo}/_uploads`)
}

function chunkedBody(...parts: Buffer[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(part)
      controller.close()
    },
  })
}

t.test('monolithic POST ?digest stores the blob (sha256 and sha512)', async (t) => {
  for (const algorithm of ['sha256', 'sha512'] as const) {
    const blob = randomBlob(1000, undefined, algorithm)
    const res = await request(server, `/v2/push/mono/blobs/uploads/?digest=${blob.digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    })
    t.equal(res.status, 201, algorithm)
    t.equal(res.headers.get('location'), `/v2/push/mono/blobs/${blob.digest}`)
    t.equal(res.headers.get('docker-content-digest'), blob.digest)
    await res.arrayBuffer()
    await expectBlob(t, 'push/mono', blob)
  }
})

t.test('POST then PUT with the whole body', async (t) => {
  const blob = randomBlob(4096)
  const session = await startSession(t, 'push/post-put')
  const res = await fetch(withDigest(session, blob.digest), {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: blob.bytes,
  })
  t.equal(res.status, 201)
  t.equal(res.headers.get('location'), `/v2/push/post-put/blobs/${blob.digest}`)
  t.equal(res.headers.get('docker-content-digest'), blob.digest)
  await res.arrayBuffer()
  await expectBlob(t, 'push/post-put', blob)
  const again = await fetch(session)
  await expectError(t, again, 404, 'BLOB_UPLOAD_UNKNOWN', 'a finished session')
})

t.test('chunked upload: the conformance sequence', async (t) => {
  const repo = 'conformance/chunked'
  const blob = randomBlob(42)
  const chunk1 = blob.bytes.subarray(0, 22)
  const chunk2 = blob.bytes.subarray(22)

  const fresh = await startSession(t, repo)
  const outOfOrder = await fetch(fresh, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', 'content-range': '22-41' },
    body: chunk2,
  })
  await expectError(t, outOfOrder, 416, 'RANGE_INVALID', 'chunk 2 first')

  const postLocation = await startSession(t, repo)
  const first = await patch(postLocation, chunk1, '0-21')
  t.equal(first.status, 202)
  t.equal(first.headers.get('range'), '0-21')
  const afterFirst = locationUrl(t, first)

  const repeated = await patch(postLocation, chunk1, '0-21')
  t.equal(repeated.status, 416, 'chunk 1 again, to the original POST Location')
  t.equal(repeated.headers.get('range'), '0-21', 'the 416 says where the upload stands')

  const status = await fetch(postLocation)
  t.equal(status.status, 204, 'the session survived the 416')
  t.equal(status.headers.get('range'), '0-21')
  t.ok(status.headers.get('location'))
  t.equal(status.headers.get('docker-upload-uuid'), postLocation.pathname.split('/').pop())
  const statusLocation = locationUrl(t, status)
  t.equal(statusLocation.pathname, afterFirst.pathname, 'every Location names the same session')

  const second = await patch(statusLocation, chunk2, '22-41')
  t.equal(second.status, 202)
  t.equal(second.headers.get('range'), '0-41')
  const close = await fetch(withDigest(locationUrl(t, second), blob.digest), { method: 'PUT', headers: { 'content-length': '0' } })
  t.equal(close.status, 201)
  t.equal(close.headers.get('location'), `/v2/${repo}/blobs/${blob.digest}`)
  await close.arrayBuffer()
  await expectBlob(t, repo, blob)
})

t.test('chunked upload accepts the RFC Content-Range form and the last chunk in the PUT', async (t) => {
  const blob = randomBlob(3 * 1024 - 5)
  const session = await startSession(t, 'push/put-chunk')
  const first = await patch(session, blob.bytes.subarray(0, 1024), 'bytes 0-1023/*')
  t.equal(first.status, 202)
  t.equal(first.headers.get('range'), '0-1023')
  const second = await patch(locationUrl(t, first), blob.bytes.subarray(1024, 2048), '1024-2047')
  t.equal(second.headers.get('range'), '0-2047')

  const skipAhead = await fetch(withDigest(session, blob.digest), {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-range': '2049-3066' },
    body: blob.bytes.subarray(2049),
  })
  await expectError(t, skipAhead, 416, 'RANGE_INVALID', 'an out-of-order final PUT')
  const restart = await patch(session, blob.bytes.subarray(0, 1024), '0-1023')
  t.equal(restart.status, 416, 'restarting at 0')
  const status = await fetch(session)
  t.equal(status.headers.get('range'), '0-2047', 'the 416s left the session intact')

  const last = blob.bytes.subarray(2048)
  const close = await fetch(withDigest(session, blob.digest), {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-range': `2048-${blob.size - 1}` },
    body: last,
  })
  t.equal(close.status, 201)
  await close.arrayBuffer()
  await expectBlob(t, 'push/put-chunk', blob)
})

t.test('malformed or inconsistent Content-Range is refused', async (t) => {
  const session = await startSession(t, 'push/bad-range')
  const malformed = await fetch(session, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', 'content-range': 'bytes=0-3' },
    body: Buffer.from('abcd'),
  })
  await expectError(t, malformed, 416, 'BLOB_UPLOAD_INVALID', 'malformed Content-Range')
  const mismatch = await fetch(session, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', 'content-range': '0-9' },
    body: Buffer.from('abcd'),
  })
  await expectError(t, mismatch, 400, 'SIZE_INVALID', 'Content-Length disagrees with Content-Range')
  const status = await fetch(session)
  t.equal(status.status, 204)
  t.equal(status.headers.get('range'), '0-0', 'nothing was appended')
})

t.test('streamed PATCH without Content-Range or Content-Length', async (t) => {
  const blob = randomBlob(200_000)
  const session = await startSession(t, 'push/stream')
  const res = await fetch(session, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream' },
    body: chunkedBody(blob.bytes.subarray(0, 70_000), blob.bytes.subarray(70_000)),
    duplex: 'half',
  } as RequestInit)
  t.equal(res.status, 202)
  t.equal(res.headers.get('range'), `0-${blob.size - 1}`)
  await res.arrayBuffer()
  const close = await fetch(withDigest(locationUrl(t, res), blob.digest), { method: 'PUT' })
  t.equal(close.status, 201)
  t.equal(close.headers.get('location'), `/v2/push/stream/blobs/${blob.digest}`, 'Location is required here too')
  await close.arrayBuffer()
  await expectBlob(t, 'push/stream', blob)

  const second = randomBlob(1234)
  const other = await startSession(t, 'push/stream')
  const put = await fetch(withDigest(other, second.digest), {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: chunkedBody(second.bytes),
    duplex: 'half',
  } as RequestInit)
  t.equal(put.status, 201, 'a chunked-encoded closing PUT')
  await put.arrayBuffer()
  await expectBlob(t, 'push/stream', second)
})

t.test('zero-byte blob: POST then PUT with an empty body', async (t) => {
  const session = await startSession(t, 'push/empty')
  const res = await fetch(withDigest(session, emptyDigest), { method: 'PUT', headers: { 'content-length': '0' } })
  t.equal(res.status, 201)
  await res.arrayBuffer()
  const head = await request(server, `/v2/push/empty/blobs/${emptyDigest}`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('content-length'), '0')
  const mono = await request(server, `/v2/push/empty2/blobs/uploads/?digest=${emptyDigest}`, { method: 'POST' })
  t.equal(mono.status, 201, 'a single empty POST too')
  await mono.arrayBuffer()
})

t.test('a wrong digest is refused and nothing is stored', async (t) => {
  const srv = await freshServer(t)
  const repo = 'push/wrong'
  const blob = randomBlob(512)
  const claimed = randomDigest()

  const mono = await request(srv, `/v2/${repo}/blobs/uploads/?digest=${claimed}`, { method: 'POST', body: blob.bytes })
  await expectError(t, mono, 400, 'DIGEST_INVALID', 'monolithic POST')

  const session = await startSession(t, repo, srv)
  const put = await fetch(withDigest(session, claimed), { method: 'PUT', body: blob.bytes })
  await expectError(t, put, 400, 'DIGEST_INVALID', 'POST + PUT')

  const chunked = await startSession(t, repo, srv)
  t.equal((await patch(chunked, blob.bytes, `0-${blob.size - 1}`)).status, 202)
  const close = await fetch(withDigest(chunked, randomDigest('sha512')), { method: 'PUT' })
  await expectError(t, close, 400, 'DIGEST_INVALID', 'chunked close with a wrong sha512')

  const malformed = await request(srv, `/v2/${repo}/blobs/uploads/?digest=sha256:xyz`, { method: 'POST', body: blob.bytes })
  await expectError(t, malformed, 400, 'DIGEST_INVALID', 'malformed digest')
  const missing = await startSession(t, repo, srv)
  await expectError(t, await fetch(missing, { method: 'PUT', body: blob.bytes }), 400, 'DIGEST_INVALID', 'PUT without ?digest')

  for (const digest of [claimed, blob.digest]) await expectNoBlob(t, repo, digest, srv)
  t.same(await storedBlobFiles(srv), [], 'no file under blobs/')
  t.same(await uploadDirs(srv, repo), [missing.pathname.split('/').pop()], 'only the session never closed is left')
})

t.test('a body shorter than its Content-Length commits nothing', async (t) => {
  const srv = await freshServer(t)
  const repo = 'push/short'
  const blob = randomBlob(1000)
  const partial = blob.bytes.subarray(0, 100)
  const { hostname, port } = new URL(srv.url)

  /** Sends the head and 100 bytes, waits until the server has them, then cuts the connection. */
  const sendAndAbort = async (head: string, received: () => Promise<boolean>) => {
    const socket = connect(Number(port), hostname)
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.on('connect', resolve))
    socket.write(head)
    socket.write(partial)
    await eventually(received, { message: 'the partial body to reach the session' })
    socket.destroy()
  }
  const sessionSize = async (id: string) => (await srv.driver.stat(`repositories/${repo}/_uploads/${id}/data`))?.size
  // On S3 a body whose digest is known goes straight to a multipart upload at the blob's key: no
  // session holds the bytes, and 100 bytes stay in memory below the first part (nothing to wait for).
  const direct = srv.driver.name === 's3'

  // Monolithic POST: the session it opened disappears once the server sees the abort.
  await sendAndAbort(
    `POST /v2/${repo}/blobs/uploads/?digest=${blob.digest} HTTP/1.1\r\nHost: ${srv.host}\r\n` +
      `Content-Type: application/octet-stream\r\nContent-Length: ${blob.size}\r\n\r\n`,
    async () => {
      if (direct) return true
      const [id] = await uploadDirs(srv, repo)
      return id !== undefined && (await sessionSize(id)) === partial.length
    },
  )
  await eventually(async () => (await uploadDirs(srv, repo)).length === 0, { message: 'the aborted upload to be discarded' })
  await expectNoBlob(t, repo, blob.digest, srv)
  t.same(await storedBlobFiles(srv), [], 'no file under blobs/')

  // POST then PUT: the session keeps the bytes it received, but no blob is committed.
  const session = await startSession(t, repo, srv)
  const id = session.pathname.split('/').pop()!
  await sendAndAbort(
    `PUT ${session.pathname}?digest=${blob.digest} HTTP/1.1\r\nHost: ${srv.host}\r\n` +
      `Content-Type: application/octet-stream\r\nContent-Length: ${blob.size}\r\n\r\n`,
    async () => direct || (await sessionSize(id)) === partial.length,
  )
  // Appends take the session's lock, so this empty PATCH runs after the aborted PUT settled.
  const after = await fetch(session, { method: 'PATCH', body: Buffer.alloc(0) })
  t.equal(after.status, 202)
  if (direct) t.equal(after.headers.get('range'), '0-0', 'S3: the session stays empty (the body went to an aborted multipart upload)')
  else t.equal(after.headers.get('range'), '0-99', 'received bytes stay in the session')
  await expectNoBlob(t, repo, blob.digest, srv)
  t.same(await storedBlobFiles(srv), [], 'no file under blobs/')
  const close = await fetch(withDigest(session, blob.digest), { method: 'PUT' })
  await expectError(t, close, 400, 'DIGEST_INVALID', 'closing the truncated session')
  t.same(await storedBlobFiles(srv), [])
})

t.test('unknown and garbage upload ids', async (t) => {
  const repo = 'push/unknown'
  const live = await startSession(t, repo)
  const ids = [
    '11111111-2222-4333-8444-555555555555',
    'not-a-uuid',
    '..%5c..%5cetc',
    'x%00y',
    'abc:def',
    '%2e%2e%5c_uploads',
    'Z'.repeat(300),
  ]
  for (const id of ids) {
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE']) {
      const res = await request(server, `/v2/${repo}/blobs/uploads/${id}?digest=${emptyDigest}`, {
        method,
        ...(method === 'PATCH' || method === 'PUT' ? { body: Buffer.from('data') } : {}),
      })
      await expectError(t, res, 404, 'BLOB_UPLOAD_UNKNOWN', `${method} ${id.slice(0, 20)}`)
    }
  }
  // fetch would resolve dot segments before sending these, so they go out verbatim.
  for (const id of ['..', '.', '%2e%2e', '%2E.']) {
    const res = await rawHttp(server, `GET /v2/${repo}/blobs/uploads/${id} HTTP/1.1\r\nHost: ${server.host}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 404, `id ${id}`)
    t.equal(JSON.parse(res.body.toString()).errors[0].code, 'BLOB_UPLOAD_UNKNOWN', `id ${id} is an unknown upload`)
  }
  const traversal = await rawHttp(
    server,
    `PATCH /v2/${repo}/blobs/uploads/../../_uploads HTTP/1.1\r\nHost: ${server.host}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`,
  )
  t.equal(traversal.status, 404, 'an id spanning several segments is no endpoint')
  const encoded = await request(server, `/v2/${repo}/blobs/uploads/%2e%2e%2f%2e%2e%2f_uploads`)
  t.equal(encoded.status, 404, 'nor is one that decodes to several segments')
  await encoded.arrayBuffer()

  // Refused before the body arrived: the server must not wait for a gigabyte nobody will read.
  const early = await rawHttp(
    server,
    `PATCH /v2/${repo}/blobs/uploads/${ids[0]} HTTP/1.1\r\nHost: ${server.host}\r\nContent-Length: 1000000000\r\n\r\npartial`,
  )
  t.equal(early.status, 404, 'an early refusal')
  t.equal(early.header('connection'), 'close', 'closes the connection instead of waiting for the body')

  const elsewhere = await fetch(new URL(live.pathname.replace(repo, 'push/other'), server.url))
  await expectError(t, elsewhere, 404, 'BLOB_UPLOAD_UNKNOWN', 'a session of another repository')
  const status = await fetch(live)
  t.equal(status.status, 204, 'the live session was not disturbed')
})

t.test('DELETE cancels an upload', async (t) => {
  const srv = await freshServer(t)
  const session = await startSession(t, 'push/cancel', srv)
  t.equal((await patch(session, Buffer.from('partial'))).status, 202)
  const del = await fetch(session, { method: 'DELETE', headers: { 'content-length': '0' } })
  t.equal(del.status, 204)
  await del.arrayBuffer()
  await expectError(t, await fetch(session), 404, 'BLOB_UPLOAD_UNKNOWN', 'GET after cancel')
  await expectError(t, await fetch(session, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN', 'DELETE again')
  t.same(await uploadDirs(srv, 'push/cancel'), [], 'the session is gone from storage')
})

t.test('cross-repository mount', async (t) => {
  const blob = randomBlob(777)
  await pushBlob(server, 'conformance/source', blob)

  const mounted = await request(server, `/v2/conformance/crossmount/blobs/uploads/?mount=${blob.digest}&from=conformance/source`, {
    method: 'POST',
  })
  t.equal(mounted.status, 201)
  t.equal(mounted.headers.get('location'), `/v2/conformance/crossmount/blobs/${blob.digest}`)
  t.equal(mounted.headers.get('docker-content-digest'), blob.digest)
  await mounted.arrayBuffer()
  await expectBlob(t, 'conformance/crossmount', blob)

  const encoded = await request(
    server,
    `/v2/push/mount2/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent('conformance/source')}`,
    { method: 'POST' },
  )
  t.equal(encoded.status, 201, 'percent-encoded query values')
  await encoded.arrayBuffer()

  const missing = randomBlob(100)
  const fallback = await request(server, `/v2/push/mount3/blobs/uploads/?mount=${missing.digest}&from=conformance/source`, {
    method: 'POST',
  })
  t.equal(fallback.status, 202, 'the source lacks the blob: an upload session instead')
  const session = locationUrl(t, fallback)
  t.match(session.pathname, /^\/v2\/push\/mount3\/blobs\/uploads\//)
  await fallback.arrayBuffer()
  const put = await fetch(withDigest(session, missing.digest), { method: 'PUT', body: missing.bytes })
  t.equal(put.status, 201, 'and the session takes the PUT')
  await put.arrayBuffer()

  const anonymous = await request(server, `/v2/push/mount4/blobs/uploads/?mount=${randomDigest()}`, { method: 'POST' })
  t.equal(anonymous.status, 202, 'no from: an upload session')
  t.match(locationUrl(t, anonymous).pathname, /^\/v2\/push\/mount4\/blobs\/uploads\//)
  await anonymous.arrayBuffer()
  const anonymousExisting = await request(server, `/v2/push/mount5/blobs/uploads/?mount=${blob.digest}`, { method: 'POST' })
  t.equal(anonymousExisting.status, 202, 'no from, even for a blob stored elsewhere')
  await anonymousExisting.arrayBuffer()
  await expectNoBlob(t, 'push/mount5', blob.digest)

  const badFrom = await request(server, `/v2/push/mount6/blobs/uploads/?mount=${blob.digest}&from=Bad/Name`, { method: 'POST' })
  await expectError(t, badFrom, 400, 'NAME_INVALID', 'a malformed from')
  const badDigest = await request(server, `/v2/push/mount6/blobs/uploads/?mount=nope&from=conformance/source`, { method: 'POST' })
  await expectError(t, badDigest, 400, 'DIGEST_INVALID', 'a malformed mount digest')
})

t.test('manifest PUT by tag and by digest', async (t) => {
  const repo = 'push/manifests'
  const image = await pushImage(server, repo, 'test0')
  for (const reference of ['test1', 'test2', image.manifest.digest]) {
    const res = await putManifest(server, repo, reference, image.manifest)
    t.equal(res.status, 201, reference)
    t.equal(res.headers.get('location'), `/v2/${repo}/manifests/${image.manifest.digest}`)
    t.equal(res.headers.get('docker-content-digest'), image.manifest.digest)
    t.equal(res.headers.get('oci-subject'), null, 'no subject, no OCI-Subject')
  }
  const get = await request(server, `/v2/${repo}/manifests/test2`)
  t.equal(get.status, 200)
  t.same(Buffer.from(await get.arrayBuffer()), image.manifest.bytes)
})

t.test('manifest references must exist', async (t) => {
  const repo = 'push/references'
  const config = randomConfig()
  const layer = randomBlob(100)
  await pushBlob(server, repo, config)
  const missingLayer = imageManifest({ config, layers: [layer] })
  const res = await putManifest(server, repo, 'missing', missingLayer)
  await expectError(t, res, 400, 'MANIFEST_BLOB_UNKNOWN', 'missing layer')
  const missingConfig = imageManifest({ config: randomConfig(), layers: [] })
  await expectError(t, await putManifest(server, repo, 'missing', missingConfig), 400, 'MANIFEST_BLOB_UNKNOWN', 'missing config')
  const get = await request(server, `/v2/${repo}/manifests/${missingLayer.digest}`)
  t.equal(get.status, 404, 'the refused manifest was not stored')
  await get.arrayBuffer()

  await pushBlob(server, 'push/elsewhere', layer)
  await expectError(
    t,
    await putManifest(server, repo, 'missing', missingLayer),
    400,
    'MANIFEST_BLOB_UNKNOWN',
    'a layer of another repository',
  )

  const child = imageManifest({ config, layers: [] })
  const index = imageIndex({ manifests: [child] })
  await expectError(t, await putManifest(server, repo, 'index', index), 400, 'MANIFEST_BLOB_UNKNOWN', 'a missing child manifest')
  await pushManifest(server, repo, child.digest, child)
  t.equal((await putManifest(server, repo, 'index', index)).status, 201, 'accepted once the child is there')

  const nested = imageIndex({ manifests: [index, child] })
  t.equal((await putManifest(server, repo, nested.digest, nested)).status, 201, 'a nested index by digest')
  const empty = imageIndex({ manifests: [] })
  t.equal((await putManifest(server, repo, 'empty-index', empty)).status, 201, 'an empty index')
})

t.test('non-distributable layers with urls need not exist', async (t) => {
  const repo = 'push/foreign'
  const config = randomConfig()
  const local = randomBlob(64)
  for (const blob of [config, local]) await pushBlob(server, repo, blob)
  const foreign = (mediaType: string) => ({ ...descriptorOf(randomBlob(10)), mediaType, urls: ['https://example.com/layer'] })
  const manifest = imageManifest({
    config,
    layers: [
      local,
      foreign('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'),
      foreign('application/vnd.oci.image.layer.nondistributable.v1.tar'),
    ],
  })
  t.equal((await putManifest(server, repo, 'nd', manifest)).status, 201)
  const docker = encodeManifest(
    {
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifest,
      config: { ...descriptorOf(config), mediaType: 'application/vnd.docker.container.image.v1+json' },
      layers: [foreign('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip')],
    },
    mediaTypes.dockerManifest,
  )
  t.equal((await putManifest(server, repo, 'windows', docker)).status, 201, 'docker foreign layers')
})

t.test('a subject that does not exist is accepted and echoed in OCI-Subject', async (t) => {
  const repo = 'push/subject'
  const config = makeBlob('{}', mediaTypes.ociEmpty)
  await pushBlob(server, repo, config)
  const subject = randomDigest()
  const manifest = imageManifest({
    config,
    layers: [config],
    artifactType: 'application/vnd.example.sbom',
    subject: { mediaType: mediaTypes.ociManifest, digest: subject, size: 1234 },
  })
  const res = await putManifest(server, repo, manifest.digest, manifest)
  t.equal(res.status, 201)
  t.equal(res.headers.get('oci-subject'), subject)
  const index = imageIndex({ manifests: [], subject: { mediaType: mediaTypes.ociManifest, digest: subject, size: 1 } })
  const indexRes = await putManifest(server, repo, index.digest, index)
  t.equal(indexRes.status, 201, 'an index with a subject')
  t.equal(indexRes.headers.get('oci-subject'), subject)
})

t.test('malformed manifests', async (t) => {
  const repo = 'push/invalid'
  const config = randomConfig()
  await pushBlob(server, repo, config)
  const put = (body: string | Buffer, contentType: string, reference = 'bad') =>
    request(server, `/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': contentType }, body })

  await expectError(t, await put('{not json', mediaTypes.ociManifest), 400, 'MANIFEST_INVALID', 'invalid JSON')
  await expectError(t, await put('[]', mediaTypes.ociManifest), 400, 'MANIFEST_INVALID', 'not an object')
  await expectError(t, await put('', mediaTypes.ociManifest), 400, 'MANIFEST_INVALID', 'an empty body')
  const v1 = { ...imageManifest({ config }).json, schemaVersion: 1 }
  await expectError(t, await put(JSON.stringify(v1), mediaTypes.ociManifest), 400, 'MANIFEST_INVALID', 'schemaVersion 1')
  const badLayer = { ...imageManifest({ config }).json, layers: [{ mediaType: 'x', digest: 'sha256:nope', size: 1 }] }
  await expectError(t, await put(JSON.stringify(badLayer), mediaTypes.ociManifest), 400, 'MANIFEST_INVALID', 'a malformed descriptor')
  const noLayers = { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: descriptorOf(config) }
  await expectError(t, await put(JSON.stringify(noLayers), mediaTypes.ociManifest), 400, 'MANIFEST_INVALID', 'no layers array')

  const image = imageManifest({ config })
  await expectError(t, await put(image.bytes, mediaTypes.ociIndex), 400, 'MANIFEST_INVALID', 'Content-Type disagrees with mediaType')
  await expectError(t, await put(image.bytes, mediaTypes.dockerManifest), 400, 'MANIFEST_INVALID', 'docker Content-Type, OCI document')

  const custom = imageManifest({ config, mediaType: 'application/vnd.example.manifest+json' })
  const unsupported = await put(custom.bytes, 'application/vnd.example.manifest+json')
  t.ok([400, 415].includes(unsupported.status), `an unsupported media type: ${unsupported.status}`)
  await unsupported.arrayBuffer()
  const schema1 = await put(JSON.stringify({ schemaVersion: 2, name: 'x', tag: 'y', fsLayers: [] }), mediaTypes.dockerSchema1Signed)
  t.ok([400, 415].includes(schema1.status), `docker schema 1: ${schema1.status}`)
  await schema1.arrayBuffer()

  await expectError(t, await put(image.bytes, mediaTypes.ociManifest, '.bad-tag'), 400, 'TAG_INVALID', 'an invalid tag')
  await expectError(t, await put(image.bytes, mediaTypes.ociManifest, 'x'.repeat(129)), 400, 'TAG_INVALID', 'a 129-character tag')
  await expectError(
    t,
    await put(image.bytes, mediaTypes.ociManifest, 'sha256:baddigeststring'),
    400,
    'DIGEST_INVALID',
    'a malformed digest',
  )
  const spaced = Buffer.concat([image.bytes, Buffer.from('  ')])
  await expectError(t, await put(spaced, mediaTypes.ociManifest, image.digest), 400, 'DIGEST_INVALID', 'bytes that do not match the digest')
  const get = await request(server, `/v2/${repo}/manifests/${image.digest}`)
  t.equal(get.status, 404, 'nothing was stored under the digest')
  await get.arrayBuffer()
})

t.test('manifest size limit', async (t) => {
  const repo = 'push/large'
  const config = randomConfig()
  await pushBlob(server, repo, config)
  const annotations: Record<string, string> = {}
  for (let i = 0; i < 390; i++) annotations[`org.example.${i}`] = 'x'.repeat(10_000)
  const large = imageManifest({ config, annotations })
  t.ok(large.size > 3_900_000 && large.size < 4 * 1024 * 1024, `${large.size} bytes`)
  const res = await putManifest(server, repo, 'large', large)
  t.equal(res.status, 201, 'a 3.9 MB manifest is accepted')
  const get = await request(server, `/v2/${repo}/manifests/large`)
  t.same(Buffer.from(await get.arrayBuffer()), large.bytes)

  for (let i = 390; i < 430; i++) annotations[`org.example.${i}`] = 'x'.repeat(10_000)
  const huge = imageManifest({ config, annotations })
  t.ok(huge.size > 4 * 1024 * 1024)
  const tooLarge = await putManifest(server, repo, 'huge', huge)
  t.equal(tooLarge.status, 413, 'over 4 MiB with a Content-Length')
  const streamed = await request(server, `/v2/${repo}/manifests/huge`, {
    method: 'PUT',
    headers: { 'content-type': mediaTypes.ociManifest },
    body: chunkedBody(huge.bytes.subarray(0, 2_000_000), huge.bytes.subarray(2_000_000)),
    duplex: 'half',
  } as RequestInit)
  t.equal(streamed.status, 413, 'over 4 MiB in chunked encoding')
  await streamed.arrayBuffer()
  // The refused connection must not be reused with body bytes still in flight (it would hang).
  const burst = await Promise.all(
    Array.from({ length: 6 }, () =>
      request(server, '/v2/', { signal: AbortSignal.timeout(30_000) }).then(
        (res) => res.status,
        (err: Error) => err.name,
      ),
    ),
  )
  t.same(burst, [200, 200, 200, 200, 200, 200], 'the next requests are answered')
  const head = await request(server, `/v2/${repo}/manifests/huge`, { method: 'HEAD' })
  t.equal(head.status, 404)
})

t.test('manifest media types and encodings', async (t) => {
  const repo = 'push/types'
  const config = randomConfig()
  const layer = randomBlob(128)
  for (const blob of [config, layer]) await pushBlob(server, repo, blob)

  const inferred = imageManifest({ config, layers: [], mediaType: null })
  const res = await putManifest(server, repo, 'no-media-type', inferred)
  t.equal(res.status, 201, 'a manifest without a mediaType field')
  const get = await request(server, `/v2/${repo}/manifests/no-media-type`)
  t.equal(get.headers.get('content-type'), mediaTypes.ociManifest, 'served as an OCI image manifest')
  t.same(Buffer.from(await get.arrayBuffer()), inferred.bytes)

  const noHeader = imageManifest({ config, layers: [layer] })
  const bare = await request(server, `/v2/${repo}/manifests/no-content-type`, { method: 'PUT', body: noHeader.bytes })
  t.equal(bare.status, 201, 'no Content-Type: the document decides')
  await bare.arrayBuffer()
  const params = await putManifest(server, repo, 'params', noHeader, `${mediaTypes.ociManifest}; charset=utf-8`)
  t.equal(params.status, 201, 'Content-Type parameters are ignored')
  const served = await request(server, `/v2/${repo}/manifests/params`, { method: 'HEAD' })
  t.equal(served.headers.get('content-type'), mediaTypes.ociManifest, 'and not served back')

  const pretty = encodeManifest(
    { ...noHeader.json, newUnspecifiedField: { a: [1, 2] }, data: config.bytes.toString('base64') },
    mediaTypes.ociManifest,
    'sha256',
    3,
  )
  t.equal((await putManifest(server, repo, 'pretty', pretty)).status, 201)
  const prettyGet = await request(server, `/v2/${repo}/manifests/pretty`)
  t.same(Buffer.from(await prettyGet.arrayBuffer()), pretty.bytes, 'whitespace and unknown fields are kept byte-exact')

  const chunked = imageManifest({ config, layers: [layer], annotations: { chunked: 'yes' } })
  const streamed = await request(server, `/v2/${repo}/manifests/${chunked.digest}`, {
    method: 'PUT',
    headers: { 'content-type': chunked.mediaType },
    body: chunkedBody(chunked.bytes.subarray(0, 10), chunked.bytes.subarray(10)),
    duplex: 'half',
  } as RequestInit)
  t.equal(streamed.status, 201, 'a manifest PUT without Content-Length')
  t.equal(streamed.headers.get('docker-content-digest'), chunked.digest)
  await streamed.arrayBuffer()

  const dockerConfig = makeBlob(config.bytes, 'application/vnd.docker.container.image.v1+json')
  const dockerLayer = { ...descriptorOf(layer), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }
  const docker = encodeManifest(
    { schemaVersion: 2, mediaType: mediaTypes.dockerManifest, config: descriptorOf(dockerConfig), layers: [dockerLayer] },
    mediaTypes.dockerManifest,
  )
  t.equal((await putManifest(server, repo, 'docker', docker)).status, 201, 'docker schema 2')
  const list = imageIndex({
    manifests: [{ ...descriptorOf(docker), platform: { os: 'linux', architecture: 'amd64' } }],
    mediaType: mediaTypes.dockerManifestList,
  })
  t.equal((await putManifest(server, repo, 'docker-list', list)).status, 201, 'docker manifest list')
  for (const [tag, manifest] of [
    ['docker', docker],
    ['docker-list', list],
  ] as const) {
    const res = await request(server, `/v2/${repo}/manifests/${tag}`, { headers: { accept: manifest.mediaType } })
    t.equal(res.status, 200)
    t.equal(res.headers.get('content-type'), manifest.mediaType)
    t.same(Buffer.from(await res.arrayBuffer()), manifest.bytes)
  }
})

t.test('sha512 content end to end', async (t) => {
  const repo = 'push/sha512'
  const config = randomConfig(configType, 'sha512')
  const layer = randomBlob(256, undefined, 'sha512')
  for (const blob of [config, layer]) await pushBlob(server, repo, blob)
  const manifest = imageManifest({ config, layers: [layer], algorithm: 'sha512' })
  t.match(manifest.digest, /^sha512:[0-9a-f]{128}$/)
  const res = await putManifest(server, repo, manifest.digest, manifest)
  t.equal(res.status, 201)
  t.equal(res.headers.get('docker-content-digest'), manifest.digest, 'the digest header keeps the algorithm')
  t.equal(res.headers.get('location'), `/v2/${repo}/manifests/${manifest.digest}`)
  const index = imageIndex({ manifests: [manifest], algorithm: 'sha512' })
  t.equal((await putManifest(server, repo, index.digest, index)).status, 201, 'a sha512 index of sha512 manifests')
  const get = await request(server, `/v2/${repo}/manifests/${manifest.digest}`)
  t.equal(get.status, 200)
  t.equal(get.headers.get('docker-content-digest'), manifest.digest)
  t.same(Buffer.from(await get.arrayBuffer()), manifest.bytes)

  const tagged = await putManifest(server, repo, 'by-tag', manifest)
  t.equal(tagged.headers.get('docker-content-digest'), digestOfSha256(manifest.bytes), 'by tag, the registry chooses sha256')
  const files = await storedFiles(server, 'blobs/sha512')
  t.ok(files.length >= 4, 'sha512 content lives under blobs/sha512')
})

function digestOfSha256(bytes: Buffer): string {
  return makeBlob(bytes).digest
}

t.test('upload of a random blob of each size class round-trips', async (t) => {
  for (const size of [1, 1023, 65_536, 1_000_001]) {
    const blob = makeBlob(randomBytes(size))
    await pushBlob(server, 'push/sizes', blob)
    const head = await request(server, `/v2/push/sizes/blobs/${blob.digest}`, { method: 'HEAD' })
    t.equal(head.headers.get('content-length'), String(size))
  }
})
