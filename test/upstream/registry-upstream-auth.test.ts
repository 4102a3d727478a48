// Authenticating to upstreams: the Docker token flow against a stub registry + token service
// (GET with Basic, the OAuth2 POST form fallback, caching), and Basic auth against a real
// distribution behind htpasswd.
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import type { Digest } from '../../src/core/digest.js'
import { mediaTypes } from '../../src/core/media-types.js'
import { staticCredentials, type CredentialProvider } from '../../src/client/credentials.js'
import { RegistryUpstream } from '../../src/upstream/registry-upstream.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { sendJson, startStub, type HttpStub, type RecordedRequest } from '../helpers/http-stub.js'
import { seedImage } from '../helpers/seed.js'

const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest
const manifestBytes = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}')

interface TokenServiceOptions {
  /** How the token endpoint answers a request; the default hands out `abc` to anyone. */
  token?: (request: RecordedRequest) => { status: number; body: unknown }
  /** Leave `scope` out of the challenge. */
  noScope?: boolean
}

/** One stub playing both the registry (wants `Bearer <issued token>`) and its token service at /token. */
async function tokenRegistry(t: Test, options: TokenServiceOptions = {}) {
  const issued = new Set<string>()
  const handout = options.token ?? (() => ({ status: 200, body: { token: 'abc', expires_in: 60 } }))
  const stub: HttpStub = await startStub((request, response) => {
    if (request.url.startsWith('/token')) {
      const { status, body } = handout(request)
      const value = (body as { token?: string; access_token?: string }).token ?? (body as { access_token?: string }).access_token
      if (status === 200 && value) issued.add(value)
      return sendJson(response, status, body)
    }
    const presented = request.headers.authorization?.replace(/^Bearer /, '')
    if (presented === undefined || !issued.has(presented)) {
      const scope = options.noScope ? '' : `,scope="repository:foo:pull"`
      return sendJson(
        response,
        401,
        { errors: [{ code: 'UNAUTHORIZED' }] },
        { 'www-authenticate': `Bearer realm="${stub.url}/token",service="test"${scope}` },
      )
    }
    response.writeHead(200, {
      'content-type': mediaTypes.ociManifest,
      'content-length': String(manifestBytes.length),
      'docker-content-digest': sha256(manifestBytes),
    })
    response.end(request.method === 'HEAD' ? undefined : manifestBytes)
  })
  t.teardown(() => stub.close())
  const tokenRequests = () => stub.requests.filter((r) => r.url.startsWith('/token'))
  return { stub, tokenRequests }
}

function upstreamFor(t: Test, stub: HttpStub, credentials?: CredentialProvider): RegistryUpstream {
  const upstream = new RegistryUpstream({
    name: 'token.example',
    url: stub.url,
    ...(credentials ? { credentials } : {}),
    retries: { baseDelayMs: 10 },
  })
  t.teardown(() => upstream.close())
  return upstream
}

function basicOf(request: RecordedRequest | undefined): string | undefined {
  const header = request?.headers.authorization
  return header?.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString() : undefined
}

t.test('anonymous Bearer flow: one token for many requests, sent from the start after the first challenge', async (t) => {
  const { stub, tokenRequests } = await tokenRegistry(t)
  const upstream = upstreamFor(t, stub)
  t.equal((await upstream.resolve('foo', 'v1'))?.digest, sha256(manifestBytes))
  t.ok((await upstream.getManifest('foo', 'v1'))?.bytes.equals(manifestBytes))
  await Promise.all([upstream.resolve('foo', 'v2'), upstream.resolve('foo', 'v3'), upstream.getManifest('foo', 'v4')])
  t.equal(tokenRequests().length, 1, 'one token request')
  const token = new URL(tokenRequests()[0]!.url, stub.url)
  t.equal(token.searchParams.get('service'), 'test')
  t.equal(token.searchParams.get('scope'), 'repository:foo:pull')
  t.equal(tokenRequests()[0]!.headers.authorization, undefined, 'anonymous')
  t.equal(
    stub.requests.filter((r) => !r.url.startsWith('/token') && r.headers.authorization === undefined).length,
    1,
    'only the first request was challenged',
  )
})

t.test('concurrent first requests share one token fetch', async (t) => {
  const { stub, tokenRequests } = await tokenRegistry(t)
  const upstream = upstreamFor(t, stub)
  await upstream.resolve('foo', 'v0') // learn the challenge
  const fresh = upstreamFor(t, stub)
  await fresh.resolve('foo', 'v0')
  t.equal(tokenRequests().length, 2, 'each upstream has its own cache')
  const { stub: other, tokenRequests: otherTokens } = await tokenRegistry(t)
  const concurrent = upstreamFor(t, other)
  await concurrent.resolve('foo', 'first')
  await Promise.all(Array.from({ length: 8 }, (_, i) => concurrent.resolve('bar', `v${i}`)))
  t.equal(otherTokens().filter((r) => r.url.includes('repository%3Abar%3Apull')).length, 1, 'eight waiters, one fetch for the new scope')
})

t.test('credentials from the provider arrive as Basic at the token endpoint, never at the registry', async (t) => {
  const { stub, tokenRequests } = await tokenRegistry(t)
  const upstream = upstreamFor(t, stub, staticCredentials({ [stub.host]: { username: 'robot', password: 's3cr:et' } }))
  t.ok(await upstream.resolve('foo', 'v1'))
  t.equal(basicOf(tokenRequests()[0]), 'robot:s3cr:et')
  for (const request of stub.requests.filter((r) => !r.url.startsWith('/token'))) t.notMatch(request.headers.authorization ?? '', /^Basic/)
})

t.test('the scope is computed from the repository when the challenge names none', async (t) => {
  const { stub, tokenRequests } = await tokenRegistry(t, { noScope: true })
  t.ok(await upstreamFor(t, stub).resolve('library/nginx', 'v1'))
  t.equal(new URL(tokenRequests()[0]!.url, stub.url).searchParams.get('scope'), 'repository:library/nginx:pull')
})

t.test('POST form fallback when the token endpoint refuses GET; access_token accepted', async (t) => {
  const { stub, tokenRequests } = await tokenRegistry(t, {
    token: (request) =>
      request.method === 'GET' ? { status: 405, body: {} } : { status: 200, body: { access_token: 'xyz', expires_in: 300 } },
  })
  const upstream = upstreamFor(t, stub, staticCredentials({ [stub.host]: { username: 'robot', password: 'pw' } }))
  t.ok(await upstream.resolve('foo', 'v1'))
  t.ok(await upstream.resolve('foo', 'v2'))
  t.same(
    tokenRequests().map((r) => r.method),
    ['GET', 'POST'],
    'one fallback, then cached',
  )
  const form = new URLSearchParams(tokenRequests()[1]!.body.toString())
  t.same(Object.fromEntries(form), {
    grant_type: 'password',
    username: 'robot',
    password: 'pw',
    service: 'test',
    scope: 'repository:foo:pull',
    client_id: 'ferry',
  })
  t.equal(tokenRequests()[1]!.headers['content-type'], 'application/x-www-form-urlencoded')
})

t.test('an identity token (username <token>) is sent as an OAuth2 refresh_token grant', async (t) => {
  const { stub, tokenRequests } = await tokenRegistry(t, {
    token: (request) => (request.method === 'POST' ? { status: 200, body: { access_token: 'r1' } } : { status: 400, body: {} }),
  })
  const upstream = upstreamFor(t, stub, staticCredentials({ [stub.host]: { username: '<token>', password: 'refresh-me' } }))
  t.ok(await upstream.resolve('foo', 'v1'))
  t.same(
    tokenRequests().map((r) => r.method),
    ['POST'],
  )
  const form = new URLSearchParams(tokenRequests()[0]!.body.toString())
  t.equal(form.get('grant_type'), 'refresh_token')
  t.equal(form.get('refresh_token'), 'refresh-me')
})

t.test('tokens are renewed before they expire', async (t) => {
  let n = 0
  const { stub, tokenRequests } = await tokenRegistry(t, { token: () => ({ status: 200, body: { token: `t${++n}`, expires_in: 1 } }) })
  const upstream = upstreamFor(t, stub)
  t.ok(await upstream.resolve('foo', 'v1'))
  t.ok(await upstream.resolve('foo', 'v1'))
  t.equal(tokenRequests().length, 1)
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  t.ok(await upstream.resolve('foo', 'v1'))
  t.equal(tokenRequests().length, 2, 'a fresh token after expires_in')
})

t.test('a refused token request is UNAVAILABLE naming the upstream, without secrets', async (t) => {
  const { stub } = await tokenRegistry(t, { token: () => ({ status: 401, body: { details: 'incorrect username or password' } }) })
  const upstream = upstreamFor(t, stub, staticCredentials({ [stub.host]: { username: 'robot', password: 'hunter2-secret' } }))
  const err = await upstream.resolve('foo', 'v1').catch((e: unknown) => e)
  t.match(err, { code: 'UNAVAILABLE', status: 503, message: 'upstream token.example refused our credentials' })
  const everything = JSON.stringify(err) + String((err as Error).message) + String(((err as Error).cause as Error | undefined)?.message)
  t.notMatch(everything, /hunter2|cm9ib3Q6/, 'neither the password nor its Basic encoding appears')
})

t.test('a token that the registry keeps refusing ends in DENIED after one retry', async (t) => {
  const stub = await startStub((request, response) => {
    if (request.url.startsWith('/token')) return sendJson(response, 200, { token: 'useless' })
    sendJson(response, 401, {}, { 'www-authenticate': `Bearer realm="http://${request.headers.host}/token",service="test"` })
  })
  t.teardown(() => stub.close())
  await t.rejects(upstreamFor(t, stub).resolve('foo', 'v1'), {
    code: 'DENIED',
    status: 403,
    message: 'upstream token.example denied access',
  })
  t.equal(stub.requests.filter((r) => !r.url.startsWith('/token')).length, 2, 'sent once, retried once with the token')
})

t.test('Basic auth against a real distribution (htpasswd)', { skip: distributionUnavailable() ?? false }, async (t) => {
  const registry = await startDistribution({ auth: 'htpasswd', users: { robot: 'pull-secret' } })
  t.teardown(() => registry.stop())
  const auth = { username: 'robot', password: 'pull-secret' }
  const image = await seedImage(registry.url, 'private/app', 'v1', { auth })

  const anonymous = new RegistryUpstream({ name: 'private.example', url: registry.url })
  t.teardown(() => anonymous.close())
  await t.rejects(anonymous.resolve('private/app', 'v1'), { code: 'DENIED', status: 403, message: /private\.example/ }, 'never a 401')

  const wrong = new RegistryUpstream({
    name: 'private.example',
    url: registry.url,
    credentials: staticCredentials({ [registry.host]: { username: 'robot', password: 'nope' } }),
  })
  t.teardown(() => wrong.close())
  await t.rejects(wrong.getManifest('private/app', 'v1'), { code: 'DENIED', status: 403 })

  // Its own User-Agent tells its requests apart in the access log from the ones above.
  const upstream = new RegistryUpstream({
    name: 'private.example',
    url: registry.url,
    credentials: staticCredentials({ [registry.host]: auth }),
    userAgent: 'ferry-test-basic',
  })
  t.teardown(() => upstream.close())
  t.equal((await upstream.resolve('private/app', 'v1'))?.digest, image.manifest.digest)
  t.ok((await upstream.getManifest('private/app', 'v1'))?.bytes.equals(image.manifest.bytes))
  const blob = await upstream.openBlob('private/app', image.layers[0]!.digest as Digest)
  t.ok(Buffer.concat(await blob!.stream.toArray()).equals(image.layers[0]!.bytes))
  t.same(await upstream.listTags('private/app'), ['v1'])
  const statuses = (await registry.loggedRequests()).filter((r) => r.userAgent === 'ferry-test-basic').map((r) => r.status)
  t.same(statuses, [401, 200, 200, 200, 200], 'challenged once, then Basic sent up front')
})
