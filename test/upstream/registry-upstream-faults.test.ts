// How RegistryUpstream fails: deliberately broken upstreams (tiny node:http servers) for what a
// real registry will not do on demand — lying digests, outages, rate limits, stalls, redirects.
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import type { Digest } from '../../src/core/digest.js'
import { mediaTypes } from '../../src/core/media-types.js'
import { staticCredentials } from '../../src/client/credentials.js'
import { RegistryUpstream, type RegistryUpstreamOptions } from '../../src/upstream/registry-upstream.js'
import { isUpstreamFailure } from '../../src/upstream/upstream.js'
import { closedPort, sendJson, startStub, type StubHandler } from '../helpers/http-stub.js'

const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest
const manifestBytes = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}')
const fastRetries = { baseDelayMs: 10, maxDelayMs: 20 }

async function stubUpstream(t: Test, handler: StubHandler, options: Partial<RegistryUpstreamOptions> = {}) {
  const stub = await startStub(handler)
  t.teardown(() => stub.close())
  const upstream = new RegistryUpstream({ name: 'flaky.example', url: stub.url, retries: fastRetries, ...options })
  t.teardown(() => upstream.close())
  return { stub, upstream }
}

function manifestResponse(bytes: Buffer, digest: string) {
  return { 'content-type': mediaTypes.ociManifest, 'content-length': String(bytes.length), 'docker-content-digest': digest }
}

t.test('a manifest whose bytes do not match Docker-Content-Digest is rejected', async (t) => {
  const lie = sha256('something else')
  const { upstream } = await stubUpstream(t, (request, response) => {
    response.writeHead(200, manifestResponse(manifestBytes, lie))
    response.end(request.method === 'HEAD' ? undefined : manifestBytes)
  })
  const err = await upstream.getManifest('foo', 'v1').catch((e: unknown) => e)
  t.match(err, { code: 'UNAVAILABLE', status: 503, upstream: 'flaky.example', message: /flaky\.example.*digest/ })
  t.ok(isUpstreamFailure(err), 'an upstream failure: the proxy may serve stale')
  await t.rejects(upstream.getManifest('foo', lie), { code: 'UNAVAILABLE' }, 'by digest: the bytes must hash to the reference')
  await t.rejects(upstream.resolve('foo', sha256('asked for')), { code: 'UNAVAILABLE' }, 'HEAD by digest answering another digest')
})

t.test('bytes not matching a digest reference are rejected even without Docker-Content-Digest', async (t) => {
  const { upstream } = await stubUpstream(t, (_request, response) => {
    response.writeHead(200, { 'content-type': mediaTypes.ociManifest })
    response.end(manifestBytes)
  })
  await t.rejects(upstream.getManifest('foo', sha256('other')), { code: 'UNAVAILABLE' })
  const manifest = await upstream.getManifest('foo', sha256(manifestBytes))
  t.equal(manifest?.digest, sha256(manifestBytes))
  const byTag = await upstream.getManifest('foo', 'v1')
  t.equal(byTag?.digest, sha256(manifestBytes), 'a tag without the header: the digest is computed')
})

t.test('manifests over 4 MiB are refused while reading', async (t) => {
  const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)
  const { upstream } = await stubUpstream(t, (request, response) => {
    // Chunked (no Content-Length) on one path, so the limit must hold while streaming.
    response.writeHead(
      200,
      request.url.includes('chunked') ? { 'content-type': mediaTypes.ociManifest } : manifestResponse(big, sha256(big)),
    )
    response.end(big)
  })
  await t.rejects(upstream.getManifest('foo', 'v1'), { code: 'UNAVAILABLE', message: /flaky\.example/ })
  await t.rejects(upstream.getManifest('chunked', 'v1'), { code: 'UNAVAILABLE' })
})

t.test('HEAD without Docker-Content-Digest falls back to GET', async (t) => {
  const { stub, upstream } = await stubUpstream(t, (request, response) => {
    response.writeHead(200, { 'content-type': mediaTypes.ociManifest, 'content-length': String(manifestBytes.length) })
    response.end(request.method === 'HEAD' ? undefined : manifestBytes)
  })
  t.same(await upstream.resolve('foo', 'v1'), {
    digest: sha256(manifestBytes),
    mediaType: mediaTypes.ociManifest,
    size: manifestBytes.length,
  })
  t.same(
    stub.requests.map((r) => r.method),
    ['HEAD', 'GET'],
  )
})

t.test('connection refused is UNAVAILABLE, fast', async (t) => {
  const upstream = new RegistryUpstream({ name: 'down.example', url: `http://127.0.0.1:${await closedPort()}` })
  t.teardown(() => upstream.close())
  const started = Date.now()
  const err = await upstream.resolve('foo', 'v1').catch((e: unknown) => e)
  t.match(err, { code: 'UNAVAILABLE', status: 503, message: 'upstream down.example is unreachable' })
  t.ok(isUpstreamFailure(err))
  t.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms with default retries`)
})

t.test('503 then 200 is retried', async (t) => {
  let calls = 0
  const { stub, upstream } = await stubUpstream(t, (request, response) => {
    if (++calls === 1) return sendJson(response, 503, { errors: [{ code: 'UNAVAILABLE' }] })
    response.writeHead(200, manifestResponse(manifestBytes, sha256(manifestBytes)))
    response.end(manifestBytes)
  })
  const manifest = await upstream.getManifest('foo', 'v1')
  t.ok(manifest?.bytes.equals(manifestBytes))
  t.equal(stub.requests.length, 2)
  t.equal(stub.connections(), 1, 'the error body was drained and the connection reused')
})

t.test('a persistent 503 gives up after 2 retries; a 500 is not retried', async (t) => {
  const { stub, upstream } = await stubUpstream(t, (request, response) =>
    sendJson(response, request.url.includes('five-hundred') ? 500 : 503, {}),
  )
  await t.rejects(upstream.statBlob('foo', sha256('x')), { code: 'UNAVAILABLE', message: 'upstream flaky.example answered 503' })
  t.equal(stub.requests.length, 3)
  await t.rejects(upstream.statBlob('five-hundred', sha256('x')), { code: 'UNAVAILABLE' })
  t.equal(stub.requests.length, 4)
})

t.test('429 surfaces TOOMANYREQUESTS with Retry-After, after retrying within the cap', async (t) => {
  const { stub, upstream } = await stubUpstream(t, (request, response) =>
    sendJson(response, 429, { errors: [{ code: 'TOOMANYREQUESTS' }] }, { 'retry-after': request.url.includes('long') ? '3600' : '1' }),
  )
  const started = Date.now()
  const err = await upstream.resolve('foo', 'v1').catch((e: unknown) => e)
  t.match(err, { code: 'TOOMANYREQUESTS', status: 429, headers: { 'retry-after': '1' }, message: /flaky\.example/ })
  t.ok(isUpstreamFailure(err))
  t.equal(stub.requests.length, 3, 'retried twice')
  t.ok(Date.now() - started >= 1_900, 'Retry-After was respected')

  await t.rejects(upstream.resolve('long', 'v1'), { code: 'TOOMANYREQUESTS', headers: { 'retry-after': '3600' } })
  t.equal(stub.requests.length, 4, 'a Retry-After beyond the cap is not waited for')
})

t.test('upstream 401 and 403 after authenticating never reach our client as 401', async (t) => {
  const { upstream } = await stubUpstream(
    t,
    (request, response) => {
      if (request.url.startsWith('/v2/forbidden/')) return sendJson(response, 403, { errors: [{ code: 'DENIED' }] })
      sendJson(response, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': 'Basic realm="stub"' })
    },
    { credentials: staticCredentials({}) },
  )
  for (const repo of ['foo', 'forbidden']) {
    const err = await upstream.resolve(repo, 'v1').catch((e: unknown) => e)
    t.match(err, { code: 'DENIED', status: 403, message: 'upstream flaky.example denied access' }, repo)
    t.notOk(isUpstreamFailure(err), 'a denial is an answer, not an outage')
  }
})

t.test('blob redirects to another origin keep Range and drop Authorization', async (t) => {
  const blob = Buffer.from('0123456789abcdefghij')
  const cdn = await startStub((request, response) => {
    const match = /bytes=(\d+)-(\d+)/.exec(String(request.headers.range ?? ''))
    if (match) {
      const [start, end] = [Number(match[1]), Number(match[2])]
      response.writeHead(206, { 'content-range': `bytes ${start}-${end}/${blob.length}`, 'content-length': String(end - start + 1) })
      return void response.end(blob.subarray(start, end + 1))
    }
    response.writeHead(200, { 'content-length': String(blob.length) })
    response.end(request.method === 'HEAD' ? undefined : blob)
  })
  t.teardown(() => cdn.close())
  const { stub, upstream } = await stubUpstream(
    t,
    (request, response) => {
      if (request.headers.authorization === undefined) return sendJson(response, 401, {}, { 'www-authenticate': 'Basic realm="stub"' })
      // Hop once within the registry's origin first: Authorization stays there.
      if (!request.url.includes('hop')) return void response.writeHead(302, { location: `${request.url}?hop=1` }).end()
      response.writeHead(307, { location: `${cdn.url}/signed/blob?sig=xyz` }).end()
    },
    { credentials: staticCredentials({}) },
  )
  // Credentials are looked up by the upstream's host.
  const withCredentials = new RegistryUpstream({
    name: 'flaky.example',
    url: stub.url,
    credentials: staticCredentials({ [stub.host]: { username: 'u', password: 'p' } }),
  })
  t.teardown(() => withCredentials.close())
  t.equal(await upstream.openBlob('foo', sha256(blob)).catch((e: { code: string }) => e.code), 'DENIED', 'no credentials for this host')

  const whole = await withCredentials.openBlob('foo', sha256(blob))
  t.ok(Buffer.concat(await whole!.stream.toArray()).equals(blob))
  const part = await withCredentials.openBlob('foo', sha256(blob), { range: { start: 5, end: 9 } })
  t.same(part?.range, { start: 5, end: 9 })
  t.equal(part?.size, blob.length)
  t.equal(Buffer.concat(await part!.stream.toArray()).toString(), '56789')
  t.same(await withCredentials.statBlob('foo', sha256(blob)), { size: blob.length }, 'HEAD follows the redirect too')

  t.ok(
    stub.requests.some((r) => r.url.includes('hop') && r.headers.authorization?.startsWith('Basic ')),
    'same-origin hop kept Authorization',
  )
  t.ok(cdn.requests.length >= 3)
  for (const request of cdn.requests)
    t.equal(request.headers.authorization, undefined, `${request.method} ${request.url} carries no Authorization`)
  t.equal(cdn.requests[1]?.headers.range, 'bytes=5-9')
})

t.test('redirect loops end after 5 hops', async (t) => {
  const { stub, upstream } = await stubUpstream(t, (request, response) => void response.writeHead(302, { location: request.url }).end())
  await t.rejects(upstream.openBlob('foo', sha256('x')), { code: 'UNAVAILABLE', message: 'upstream flaky.example broke the protocol' })
  t.equal(stub.requests.length, 6)
})

t.test('timeouts: slow headers are UNAVAILABLE; a stalled blob body errors the stream', async (t) => {
  const { upstream } = await stubUpstream(
    t,
    (request, response) => {
      if (request.url.includes('/manifests/')) return // never answers
      response.writeHead(200, { 'content-length': '1000' })
      response.write(Buffer.alloc(10)) // then stalls
    },
    { timeouts: { headersMs: 200, bodyIdleMs: 200 } },
  )
  await t.rejects(upstream.resolve('foo', 'v1'), { code: 'UNAVAILABLE', message: 'upstream flaky.example timed out' })
  const blob = await upstream.openBlob('foo', sha256('x'))
  await t.rejects(blob!.stream.toArray(), /timeout/i)
})

t.test('an aborted operation rejects with the abort reason, not an upstream failure', async (t) => {
  const controller = new AbortController()
  // The client goes away once the request is at the upstream, which never answers.
  const { upstream } = await stubUpstream(t, () => controller.abort(new Error('client went away')))
  const err = await upstream.resolve('foo', 'v1', { signal: controller.signal }).catch((e: unknown) => e)
  t.match(err, { message: 'client went away' })
  t.notOk(isUpstreamFailure(err))
})
