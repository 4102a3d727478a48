// The Docker token service through the real server: docker-style GET /token with Basic, then
// Bearer; containerd-style POST form (grant_type=password, then refresh_token); scopes granted
// as requested ∩ allowed; expired, tampered, wrong-scope, wrong-audience, foreign-key and
// refresh-as-access tokens rejected; signing key rotation with overlap; revocation by password
// change.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { SignJWT, UnsecuredJWT, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK } from 'jose'
import t from 'tap'
import { eventually } from '../helpers/eventually.js'
import { defaultConfig } from '../../src/config/schema.js'
import { parseChallenge, startAuthServer, type AuthServer } from '../helpers/auth-server.js'
import { basic, writeHtpasswd } from '../helpers/htpasswd.js'
import { seedImage } from '../helpers/seed.js'

const users = { alice: 'alice-pw', bob: 'bob-pw', root: 'root-pw' }
const roles = [
  { subjects: ['alice'], namespaces: ['team-a/**'], role: 'viewer' as const },
  { subjects: ['bob'], namespaces: ['team-a/**'], role: 'editor' as const },
  { subjects: ['root'], namespaces: ['**'], role: 'admin' as const },
]

interface TokenBody {
  token: string
  access_token: string
  expires_in: number
  issued_at: string
  refresh_token?: string
}

function ecKey(): { privateKey: KeyObject; pem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return { privateKey, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
}

async function kidOf(privateKey: KeyObject): Promise<string> {
  const { createPublicKey } = await import('node:crypto')
  return calculateJwkThumbprint(await exportJWK(createPublicKey(privateKey)))
}

async function server(
  t: Parameters<typeof startAuthServer>[0],
  overrides: { ttl?: number; now?: () => number } = {},
): Promise<AuthServer & { keyFile: string; key: KeyObject }> {
  const key = ecKey()
  const { mkdtemp } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-token-key-'))
  const keyFile = join(dir, 'token.key')
  await writeFile(keyFile, key.pem)
  const token = { ...defaultConfig().auth.token, key: keyFile, ...(overrides.ttl ? { ttl: overrides.ttl } : {}) }
  const ferry = await startAuthServer(t, {
    users,
    auth: { roles, anonymousPull: ['public/**'], token },
    ...(overrides.now ? { now: overrides.now } : {}),
  })
  return { ...ferry, keyFile, key: key.privateKey }
}

async function getToken(
  url: string,
  query: string,
  authorization?: string,
): Promise<{ status: number; body: TokenBody & Record<string, unknown>; headers: Headers }> {
  const response = await fetch(`${url}/token?${query}`, { headers: authorization ? { authorization } : {} })
  return { status: response.status, body: (await response.json()) as TokenBody & Record<string, unknown>, headers: response.headers }
}

async function postToken(
  url: string,
  form: Record<string, string>,
): Promise<{ status: number; body: TokenBody & Record<string, unknown> }> {
  const response = await fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  })
  return { status: response.status, body: (await response.json()) as TokenBody & Record<string, unknown> }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

t.test('docker style: GET /token with Basic, then Bearer', async (t) => {
  const ferry = await server(t)
  const image = await seedImage(ferry.url, 'team-a/app', 'v1', { auth: { username: 'root', password: 'root-pw' } })

  // What docker does: ping, read the challenge, ask the realm for the scope, retry with the token.
  const ping = await fetch(`${ferry.url}/v2/`)
  const challenge = parseChallenge(ping.headers.get('www-authenticate'))
  t.equal(ping.status, 401)
  t.equal(challenge?.realm, `${ferry.url}/token`)
  const scope = 'repository:team-a/app:pull,push'
  const { status, body, headers } = await getToken(
    ferry.url,
    `service=${challenge?.service}&scope=${encodeURIComponent(scope)}`,
    basic('bob', 'bob-pw'),
  )
  t.equal(status, 200)
  t.equal(headers.get('cache-control'), 'no-store', 'token answers are not cached')
  t.equal(body.token, body.access_token, 'token and access_token are the same')
  t.equal(body.expires_in, 300, 'default ttl 5m')
  t.ok(Math.abs(Date.parse(body.issued_at) - Date.now()) < 10_000, 'issued_at is now')
  t.notOk('refresh_token' in body, 'no refresh token unless asked for')
  const claims = decodeJwt(body.token)
  t.match(claims, { iss: 'ferry', aud: 'ferry', sub: 'bob' })
  t.same(claims.access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }])
  t.equal((claims.exp ?? 0) - (claims.nbf ?? 0), 300)
  t.equal(decodeProtectedHeader(body.token).alg, 'ES256')

  t.equal((await fetch(`${ferry.url}/v2/`, { headers: bearer(body.token) })).status, 200, '/v2/ with the token')
  const manifest = await fetch(`${ferry.url}/v2/team-a/app/manifests/v1`, {
    headers: { ...bearer(body.token), accept: image.manifest.mediaType },
  })
  t.equal(manifest.status, 200, 'pull with the token')
  t.equal(
    (await fetch(`${ferry.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(body.token) })).status,
    202,
    'push with the token',
  )
  const del = await fetch(`${ferry.url}/v2/team-a/app/manifests/v1`, { method: 'DELETE', headers: bearer(body.token) })
  t.equal(del.status, 403, 'delete: bob is no admin (403, whatever the token)')

  const other = await fetch(`${ferry.url}/v2/team-a/other/tags/list`, { headers: bearer(body.token) })
  t.equal(other.status, 401, 'another repository: the token does not carry it (401)')
  t.same(
    parseChallenge(other.headers.get('www-authenticate')),
    {
      realm: `${ferry.url}/token`,
      service: 'ferry',
      scope: 'repository:team-a/other:pull',
      error: 'insufficient_scope',
    },
    'the challenge asks for the missing scope',
  )
})

t.test('scopes granted are requested ∩ allowed', async (t) => {
  const ferry = await server(t)
  const scopes = [
    'repository:team-a/app:pull,push,delete',
    'repository:team-b/app:pull',
    'repository:public/x:pull',
    'registry:catalog:*',
    'repository:Bad_Name:pull',
    'nonsense',
  ]
  const query = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join('&')
  const alice = decodeJwt((await getToken(ferry.url, `service=ferry&${query}`, basic('alice', 'alice-pw'))).body.token)
  t.same(
    alice.access,
    [
      { type: 'repository', name: 'team-a/app', actions: ['pull'] },
      { type: 'repository', name: 'public/x', actions: ['pull'] },
    ],
    'viewer: pull only, nothing outside team-a but what anonymous may pull',
  )
  const root = decodeJwt((await getToken(ferry.url, `${query}`, basic('root', 'root-pw'))).body.token)
  t.same(
    root.access,
    [
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'team-b/app', actions: ['pull'] },
      { type: 'repository', name: 'public/x', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ],
    'admin on **: everything asked for',
  )
  const star = decodeJwt(
    (await getToken(ferry.url, `scope=${encodeURIComponent('repository:team-a/app:*')}`, basic('bob', 'bob-pw'))).body.token,
  )
  t.same(star.access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }], '* is what the roles allow')

  const anonymous = await getToken(
    ferry.url,
    `service=ferry&scope=${encodeURIComponent('repository:public/x:pull,push')}&scope=${encodeURIComponent('repository:team-a/app:pull')}`,
  )
  t.equal(anonymous.status, 200, 'anonymous token requests are answered')
  t.same(
    decodeJwt(anonymous.body.token).access,
    [{ type: 'repository', name: 'public/x', actions: ['pull'] }],
    'anonymous: pull of public/** only',
  )
  t.equal(decodeJwt(anonymous.body.token).sub, '')

  const catalog = (await getToken(ferry.url, 'scope=registry:catalog:*', basic('root', 'root-pw'))).body.token
  t.equal(
    (await fetch(`${ferry.url}/v2/_catalog`, { headers: bearer(catalog) })).status,
    200,
    'a registry:catalog:* token lists the catalog',
  )
  const noCatalog = (await getToken(ferry.url, 'scope=repository:team-a/app:pull', basic('root', 'root-pw'))).body.token
  t.equal(
    (await fetch(`${ferry.url}/v2/_catalog`, { headers: bearer(noCatalog) })).status,
    401,
    'a token without it does not, even for an admin',
  )
})

t.test('token endpoint errors', async (t) => {
  const ferry = await server(t)
  const wrong = await getToken(ferry.url, 'scope=repository:team-a/app:pull', basic('bob', 'wrong'))
  t.equal(wrong.status, 401, 'wrong password: 401')
  t.match(wrong.body, { errors: [{ code: 'UNAUTHORIZED' }] })
  t.equal(wrong.headers.get('www-authenticate'), 'Basic realm="ferry"')
  t.equal((await getToken(ferry.url, 'service=elsewhere', basic('bob', 'bob-pw'))).status, 400, 'another service: 400')
  t.equal((await getToken(ferry.url, 'service=ferry', 'Bearer abc')).status, 401, 'not Basic: 401')
  t.same((await postToken(ferry.url, { grant_type: 'client_credentials' })).body, {
    error: 'unsupported_grant_type',
    error_description: 'grant_type must be password or refresh_token',
  })
  t.equal((await postToken(ferry.url, { grant_type: 'password', username: 'bob' })).status, 400, 'missing password: 400')
  const badPassword = await postToken(ferry.url, { grant_type: 'password', username: 'bob', password: 'nope', service: 'ferry' })
  t.equal(badPassword.status, 400)
  t.equal(badPassword.body.error, 'invalid_grant', 'OAuth2 form: invalid_grant')
  const json = await fetch(`${ferry.url}/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(json.status, 415, 'not a form: 415')
  const huge = await fetch(`${ferry.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `grant_type=password&username=bob&password=${'x'.repeat(100_000)}`,
  })
  t.equal(huge.status, 413, 'a form over 16 KiB: 413')
})

t.test('containerd style: POST grant_type=password, then refresh_token', async (t) => {
  const ferry = await server(t)
  const first = await postToken(ferry.url, {
    grant_type: 'password',
    username: 'bob',
    password: 'bob-pw',
    service: 'ferry',
    scope: 'repository:team-a/app:pull repository:team-a/app:push',
    client_id: 'containerd-client',
    access_type: 'offline',
  })
  t.equal(first.status, 200)
  t.same(
    decodeJwt(first.body.access_token).access,
    [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }],
    'space-separated scopes',
  )
  t.type(first.body.refresh_token, 'string', 'access_type=offline: a refresh token')
  t.equal(
    (await fetch(`${ferry.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(first.body.access_token) })).status,
    202,
  )

  const refreshed = await postToken(ferry.url, {
    grant_type: 'refresh_token',
    refresh_token: first.body.refresh_token ?? '',
    service: 'ferry',
    scope: 'repository:team-a/app:pull',
  })
  t.equal(refreshed.status, 200, 'refresh_token grant')
  t.same(
    decodeJwt(refreshed.body.token).access,
    [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }],
    'with the newly requested scope',
  )
  t.equal(decodeJwt(refreshed.body.token).sub, 'bob')
  t.equal(
    (await fetch(`${ferry.url}/v2/team-a/app/tags/list`, { headers: bearer(refreshed.body.token) })).status,
    404,
    'usable (404: no tags yet)',
  )

  const offline = await getToken(ferry.url, 'scope=repository:team-a/app:pull&offline_token=true', basic('bob', 'bob-pw'))
  t.type(offline.body.refresh_token, 'string', 'GET with offline_token=true: a refresh token too')

  t.equal(
    (await fetch(`${ferry.url}/v2/team-a/app/tags/list`, { headers: bearer(first.body.refresh_token ?? '') })).status,
    401,
    'a refresh token is no access token',
  )
  const accessAsRefresh = await postToken(ferry.url, { grant_type: 'refresh_token', refresh_token: first.body.access_token })
  t.equal(accessAsRefresh.status, 400, 'and an access token is no refresh token')
  t.equal(accessAsRefresh.body.error, 'invalid_grant')

  // Changing bob's password revokes his tokens, access and refresh alike.
  await writeHtpasswd(ferry.htpasswd, { ...users, bob: 'bob-new-pw' })
  await ferry.composed.reloadCredentials()
  t.equal(
    (await fetch(`${ferry.url}/v2/team-a/app/tags/list`, { headers: bearer(refreshed.body.token) })).status,
    401,
    'access token of the old password: 401',
  )
  t.equal(
    (await postToken(ferry.url, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token ?? '' })).status,
    400,
    'refresh token of the old password: refused',
  )
})

t.test('expired, tampered, foreign, wrong-audience and unsigned tokens are rejected', async (t) => {
  const ferry = await server(t)
  const kid = await kidOf(ferry.key)
  const access = [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]
  const now = Math.floor(Date.now() / 1000)
  const sign = (
    claims: Record<string, unknown>,
    options: { key?: KeyObject; kid?: string; aud?: string; iss?: string; iat?: number; exp?: number } = {},
  ) =>
    new SignJWT({ access, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? kid })
      .setIssuer(options.iss ?? 'ferry')
      .setAudience(options.aud ?? 'ferry')
      .setSubject('bob')
      .setIssuedAt(options.iat ?? now)
      .setNotBefore(options.iat ?? now)
      .setExpirationTime(options.exp ?? now + 300)
      .sign(options.key ?? ferry.key)
  const push = async (token: string) =>
    (await fetch(`${ferry.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(token) })).status

  // Our own key, our claims, but not bob's credential version: revoked. With `cv` it is accepted:
  // so the signature and claims checks below are what reject the others.
  const { body } = await getToken(ferry.url, 'scope=repository:team-a/app:pull,push', basic('bob', 'bob-pw'))
  const cv = decodeJwt(body.token).cv as string
  t.equal(await push(await sign({ cv })), 202, 'a well-formed token signed by the key: accepted')
  t.equal(await push(await sign({})), 401, 'without the credential version: rejected')
  t.equal(await push(await sign({ cv }, { iat: now - 600, exp: now - 300 })), 401, 'expired')
  t.equal(await push(await sign({ cv }, { iat: now + 600, exp: now + 900 })), 401, 'not yet valid')
  t.equal(await push(await sign({ cv }, { aud: 'other-service' })), 401, 'wrong audience')
  t.equal(await push(await sign({ cv }, { iss: 'someone-else' })), 401, 'wrong issuer')
  t.equal(await push(await sign({ cv }, { key: ecKey().privateKey })), 401, 'signed by another key under our kid')
  t.equal(await push(await sign({ cv }, { key: ecKey().privateKey, kid: 'unknown' })), 401, 'an unknown kid')
  const unsigned = new UnsecuredJWT({ access, cv })
    .setIssuer('ferry')
    .setAudience('ferry')
    .setSubject('bob')
    .setIssuedAt()
    .setExpirationTime('5m')
    .encode()
  t.equal(await push(unsigned), 401, 'alg none')

  const [header, payload, signature] = body.token.split('.') as [string, string, string]
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
  const widened = Buffer.from(
    JSON.stringify({ ...claims, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }] }),
  ).toString('base64url')
  t.equal(await push(`${header}.${widened}.${signature}`), 401, 'tampered claims (widened access)')
  const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11)
  t.equal(await push(`${header}.${payload}.${flipped}`), 401, 'tampered signature')
  t.equal(await push(body.token), 202, 'the untouched token still works')

  const wrongScope = (await getToken(ferry.url, 'scope=repository:team-a/app:pull', basic('bob', 'bob-pw'))).body.token
  t.equal(await push(wrongScope), 401, 'a pull token cannot push')
})

t.test('an issued token expires', async (t) => {
  // The server's clock is the test's: the token expires when the test says so, not when a slow machine lets it.
  let clock = Date.now()
  const ferry = await server(t, { ttl: 1000, now: () => clock })
  const { body } = await getToken(ferry.url, 'scope=repository:team-a/app:pull', basic('bob', 'bob-pw'))
  t.equal(body.expires_in, 1)
  t.equal((await fetch(`${ferry.url}/v2/team-a/app/tags/list`, { headers: bearer(body.token) })).status, 404, 'valid at first')
  clock += 2000
  t.equal((await fetch(`${ferry.url}/v2/team-a/app/tags/list`, { headers: bearer(body.token) })).status, 401, 'rejected once expired')
})

t.test('signing key rotation: new tokens use the new key, old tokens stay valid until they expire', async (t) => {
  const ferry = await server(t)
  const oldKid = await kidOf(ferry.key)
  const before = (await getToken(ferry.url, 'scope=repository:team-a/app:pull,push', basic('bob', 'bob-pw'))).body.token
  t.equal(decodeProtectedHeader(before).kid, oldKid, 'signed with the key file')

  const next = ecKey()
  await writeFile(`${ferry.keyFile}.tmp`, next.pem)
  await rename(`${ferry.keyFile}.tmp`, ferry.keyFile)
  const newKid = await kidOf(next.privateKey)
  const after = await eventually(async () => {
    const token = (await getToken(ferry.url, 'scope=repository:team-a/app:pull,push', basic('bob', 'bob-pw'))).body.token
    return decodeProtectedHeader(token).kid === newKid && token
  })
  t.pass('the file watcher picked up the new key')
  const push = async (token: string) =>
    (await fetch(`${ferry.url}/v2/team-a/app/blobs/uploads/`, { method: 'POST', headers: bearer(token) })).status
  t.equal(await push(after), 202, 'new token works')
  t.equal(await push(before), 202, 'a token of the previous key keeps working until it expires')

  await writeFile(ferry.keyFile, 'not a key')
  await ferry.composed.reloadCredentials()
  t.equal(
    decodeProtectedHeader((await getToken(ferry.url, 'scope=repository:team-a/app:pull', basic('bob', 'bob-pw'))).body.token).kid,
    newKid,
    'a broken key file keeps the current key',
  )
  t.ok(
    ferry.records().some((r) => r.level === 50 && String(r.msg).includes(ferry.keyFile)),
    'and logs an error naming the file',
  )
  await ferry.composed.reloadCredentials()
  t.equal(
    ferry.records().filter((r) => r.level === 50 && String(r.msg).includes(ferry.keyFile)).length,
    1,
    'once, however often the same broken file is re-read',
  )
})
