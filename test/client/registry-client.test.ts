// RegistryClient behaviour not visible through RegistryUpstream: methods that must not be
// retried or redirected, connection reuse across error paths, URL validation.
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { ClientError } from '../../src/client/client-error.js'
import { staticCredentials } from '../../src/client/credentials.js'
import { RegistryClient, pullScope } from '../../src/client/registry-client.js'
import { closedPort, sendJson, startStub, type StubHandler } from '../helpers/http-stub.js'

async function clientFor(t: Test, handler: StubHandler, options: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}) {
  const stub = await startStub(handler)
  t.teardown(() => stub.close())
  const client = new RegistryClient({ url: stub.url, retries: { baseDelayMs: 5 }, ...options })
  t.teardown(() => client.close())
  return { stub, client }
}

t.test('only GET and HEAD are retried and redirected', async (t) => {
  const { stub, client } = await clientFor(t, (request, response) => {
    if (request.url === '/redirect') return void response.writeHead(307, { location: '/elsewhere' }).end()
    sendJson(response, 503, {})
  })
  const post = await client.request({ method: 'POST', path: '/v2/foo/blobs/uploads/', body: 'x' })
  t.equal(post.status, 503)
  await post.dump()
  t.equal(stub.requests.length, 1, 'POST sent once')
  const put = await client.request({ method: 'PUT', path: '/redirect', body: 'x' })
  t.equal(put.status, 307, 'a PUT gets the redirect back')
  await put.dump()
  const get = await client.request({ method: 'GET', path: '/v2/' })
  t.equal(get.status, 503)
  await get.dump()
  t.equal(stub.requests.length, 5, 'GET sent three times')
})

t.test('error bodies, redirects and challenges are drained: connections are reused, not abandoned', async (t) => {
  const { stub } = await clientFor(
    t,
    (request, response) => {
      if (request.headers.authorization === undefined)
        return sendJson(
          response,
          401,
          { errors: [{ code: 'UNAUTHORIZED', detail: 'x'.repeat(10_000) }] },
          { 'www-authenticate': 'Basic realm="r"' },
        )
      if (request.url === '/v2/moved') return void response.writeHead(301, { location: '/v2/here', 'content-length': '5' }).end('moved')
      if (request.url.includes('missing')) return sendJson(response, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] })
      sendJson(response, 200, { ok: true })
    },
    { credentials: staticCredentials({}) },
  )
  t.teardown(() => stub.close())
  const withCredentials = new RegistryClient({
    url: stub.url,
    credentials: staticCredentials({ [stub.host]: { username: 'u', password: 'p' } }),
  })
  t.teardown(() => withCredentials.close())
  for (let i = 0; i < 5; i++) {
    for (const path of ['/v2/moved', '/v2/missing', '/v2/']) {
      const response = await withCredentials.request({ method: 'GET', path, scope: pullScope('foo') })
      await response.dump()
    }
  }
  // undici may open a second socket while the first is being released; a leak would open one per request.
  t.ok(stub.connections() <= 2, `${stub.requests.length} requests over ${stub.connections()} connections`)
})

t.test('read() enforces its limit; connection failures are ClientErrors', async (t) => {
  const { client } = await clientFor(t, (_request, response) => sendJson(response, 200, { big: 'y'.repeat(2_000) }))
  const response = await client.request({ method: 'GET', path: '/v2/' })
  await t.rejects(response.read(100), { name: 'ClientError', kind: 'protocol' })

  const down = new RegistryClient({ url: `http://127.0.0.1:${await closedPort()}`, retries: { maxRetries: 1, baseDelayMs: 5 } })
  t.teardown(() => down.close())
  const err = await down.request({ method: 'GET', path: '/v2/' }).catch((e: unknown) => e)
  t.ok(err instanceof ClientError)
  t.match(err, { kind: 'unreachable', message: /ECONNREFUSED/ })
})

t.test('the base URL must be a bare http(s) origin without credentials', async (t) => {
  t.throws(() => new RegistryClient({ url: 'ftp://x' }), /http or https/)
  t.throws(() => new RegistryClient({ url: 'https://user:pass@x' }), /credentials/)
  t.throws(() => new RegistryClient({ url: 'https://x/v2' }), /path/)
  const ok = new RegistryClient({ url: 'https://gcr.io' })
  t.equal(ok.url.origin, 'https://gcr.io')
  await ok.close()
})

t.test('a stream body is opened again for each send: the answer to a 401 carries the whole body', async (t) => {
  const { stub } = await clientFor(t, (request, response) => {
    if (request.headers.authorization === undefined) return sendJson(response, 401, {}, { 'www-authenticate': 'Basic realm="r"' })
    response.writeHead(201).end()
  })
  const client = new RegistryClient({ url: stub.url, credentials: staticCredentials({ [stub.host]: { username: 'u', password: 'p' } }) })
  t.teardown(() => client.close())
  const payload = Buffer.alloc(256 * 1024, 'z')
  let opened = 0
  const response = await client.request({
    method: 'PUT',
    path: '/v2/foo/blobs/uploads/1?digest=x',
    headers: { 'content-length': String(payload.length) },
    body: () => {
      opened++
      return Readable.from([payload.subarray(0, 1000), payload.subarray(1000)])
    },
  })
  t.equal(response.status, 201)
  await response.dump()
  t.equal(opened, 2, 'opened once per send')
  t.same(
    stub.requests.map((r) => r.body.length),
    [payload.length, payload.length],
  )
  t.ok(stub.requests[1]!.body.equals(payload), 'the retried request carries every byte')
})
