// The role matrix through the real server (compose() from a Config, accounts from an htpasswd
// file written by `htpasswd -B`): anonymous, viewer, editor and admin × pull, push and delete,
// with 401 + challenge for anyone who may gain by logging in and 403 DENIED for an account that
// would not. Basic credentials are sent directly here; tokens.test.ts covers the token flow.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { loadConfig } from '../../src/config/load.js'
import { parseChallenge, startAuthServer, type AuthServer } from '../helpers/auth-server.js'
import { basic } from '../helpers/htpasswd.js'
import { seedImage, sha256, type BasicCredentials } from '../helpers/seed.js'

const users = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw', dave: 'dave-pw', root: 'root-pw' }
type User = keyof typeof users
const cred = (user: User): BasicCredentials => ({ username: user, password: users[user] })

const roles = [
  { subjects: ['alice'], namespaces: ['team-a/**'], role: 'viewer' as const },
  { subjects: ['bob'], namespaces: ['team-a/**'], role: 'editor' as const },
  { subjects: ['group:ops'], namespaces: ['team-a/**'], role: 'admin' as const },
  { subjects: ['root'], namespaces: ['**'], role: 'admin' as const },
]

async function server(t: Parameters<typeof startAuthServer>[0]): Promise<AuthServer> {
  return startAuthServer(t, {
    users,
    auth: { roles, anonymousPull: ['public/**'], users: [{ name: 'carol', password: undefined, groups: ['ops'] }] },
  })
}

interface Call {
  status: number
  headers: Headers
  body: string
}

async function call(
  url: string,
  method: string,
  user: User | undefined,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<Call> {
  const response = await fetch(url, {
    method,
    headers: { ...(user ? { authorization: basic(user, users[user]) } : {}), ...headers },
    ...(body ? { body } : {}),
  })
  return { status: response.status, headers: response.headers, body: await response.text() }
}

const errorCode = (c: Call): string | undefined =>
  c.body ? (JSON.parse(c.body) as { errors?: Array<{ code: string }> }).errors?.[0]?.code : undefined

t.test('role matrix: anonymous, viewer, editor, admin × pull, push, delete', async (t) => {
  const ferry = await server(t)
  const repo = 'team-a/app'
  // One image per delete, so every admin delete finds something.
  const image = await seedImage(ferry.url, repo, 'v1', { auth: cred('root') })
  const pull = (who: User | undefined) =>
    call(`${ferry.url}/v2/${repo}/manifests/v1`, 'GET', who, undefined, { accept: image.manifest.mediaType })
  const pullBlob = (who: User | undefined) => call(`${ferry.url}/v2/${repo}/blobs/${image.layers[0]!.digest}`, 'GET', who)
  const push = (who: User | undefined) => call(`${ferry.url}/v2/${repo}/blobs/uploads/`, 'POST', who)
  const pushManifest = (who: User | undefined) =>
    call(`${ferry.url}/v2/${repo}/manifests/pushed-${who ?? 'anon'}`, 'PUT', who, image.manifest.bytes, {
      'content-type': image.manifest.mediaType,
    })
  const del = async (who: User | undefined) => {
    const tag = `del-${randomBytes(4).toString('hex')}`
    await call(`${ferry.url}/v2/${repo}/manifests/${tag}`, 'PUT', 'root', image.manifest.bytes, {
      'content-type': image.manifest.mediaType,
    })
    return call(`${ferry.url}/v2/${repo}/manifests/${tag}`, 'DELETE', who)
  }

  const expected: Array<[User | undefined, string, { pull: number; push: number; manifest: number; delete: number }]> = [
    [undefined, 'anonymous', { pull: 401, push: 401, manifest: 401, delete: 401 }],
    ['alice', 'viewer', { pull: 200, push: 403, manifest: 403, delete: 403 }],
    ['bob', 'editor', { pull: 200, push: 202, manifest: 201, delete: 403 }],
    ['carol', 'admin (through group:ops)', { pull: 200, push: 202, manifest: 201, delete: 202 }],
    ['root', 'admin on **', { pull: 200, push: 202, manifest: 201, delete: 202 }],
    ['dave', 'an account without any binding', { pull: 403, push: 403, manifest: 403, delete: 403 }],
  ]
  for (const [who, label, want] of expected) {
    const results = { pull: await pull(who), push: await push(who), manifest: await pushManifest(who), delete: await del(who) }
    for (const [action, result] of Object.entries(results)) {
      const status = want[action as keyof typeof want]
      t.equal(result.status, status, `${label}: ${action} → ${status}`)
      if (status === 401) t.equal(errorCode(result), 'UNAUTHORIZED', `${label}: ${action} error code`)
      if (status === 403) {
        t.equal(errorCode(result), 'DENIED', `${label}: ${action} error code`)
        t.equal(result.headers.get('www-authenticate'), null, `${label}: ${action}: no challenge, logging in again would not help`)
      }
    }
    if (want.pull === 200) t.equal((await pullBlob(who)).status, 200, `${label}: blob pull`)
  }
})

t.test('the 401 challenge names realm, service and the scope of the request', async (t) => {
  const ferry = await server(t)
  const host = new URL(ferry.url).host
  const pull = await call(`${ferry.url}/v2/team-a/app/manifests/v1`, 'HEAD', undefined)
  t.equal(pull.status, 401)
  t.equal(pull.headers.get('www-authenticate'), `Bearer realm="http://${host}/token",service="ferry",scope="repository:team-a/app:pull"`)
  const push = await call(`${ferry.url}/v2/team-a/app/blobs/uploads/`, 'POST', undefined)
  t.same(parseChallenge(push.headers.get('www-authenticate')), {
    realm: `http://${host}/token`,
    service: 'ferry',
    scope: 'repository:team-a/app:pull,push',
  })
  const del = await call(`${ferry.url}/v2/team-a/app/manifests/v1`, 'DELETE', undefined)
  t.equal(parseChallenge(del.headers.get('www-authenticate'))?.scope, 'repository:team-a/app:delete')
  // fetch may not set Host: undici's request may.
  const proxied = await request(`${ferry.url}/v2/team-a/app/manifests/v1`, {
    headers: { 'x-forwarded-proto': 'https', host: 'ferry.example:443' },
  })
  await proxied.body.dump()
  t.equal(
    parseChallenge(String(proxied.headers['www-authenticate']))?.realm,
    'https://ferry.example:443/token',
    'realm from Host and X-Forwarded-Proto',
  )
  const wrong = await fetch(`${ferry.url}/v2/team-a/app/manifests/v1`, { headers: { authorization: basic('bob', 'not-his') } })
  t.equal(wrong.status, 401, 'wrong password: 401')
  t.ok(parseChallenge(wrong.headers.get('www-authenticate')), 'with a challenge')
  const scheme = await fetch(`${ferry.url}/v2/team-a/app/manifests/v1`, { headers: { authorization: 'Digest username="bob"' } })
  t.equal(scheme.status, 401, 'unknown scheme: 401')
})

t.test('a configured realm is advertised as written', async (t) => {
  const ferry = await startAuthServer(t, {
    users,
    auth: {
      roles,
      anonymousPull: [],
      token: { ...(await loadConfig()).auth.token, realm: 'https://auth.example/token', service: 'registry.example' },
    },
  })
  const response = await call(`${ferry.url}/v2/team-a/app/manifests/v1`, 'GET', undefined)
  t.equal(
    response.headers.get('www-authenticate'),
    'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team-a/app:pull"',
  )
})

t.test('/v2/: a challenge for anonymous clients when accounts exist, 200 with valid credentials', async (t) => {
  const ferry = await server(t)
  const anonymous = await call(`${ferry.url}/v2/`, 'GET', undefined)
  t.equal(anonymous.status, 401, 'anonymous: 401, so docker and skopeo learn where to log in')
  t.same(parseChallenge(anonymous.headers.get('www-authenticate')), { realm: `${ferry.url}/token`, service: 'ferry' }, 'no scope')
  t.equal(anonymous.headers.get('docker-distribution-api-version'), 'registry/2.0')
  t.equal((await call(`${ferry.url}/v2/`, 'GET', 'dave')).status, 200, 'any valid account: 200')
  t.equal((await fetch(`${ferry.url}/v2/`, { headers: { authorization: basic('dave', 'nope') } })).status, 401, 'bad credentials: 401')
})

t.test('anonymous pull per anonymousPull; anonymous push and delete never', async (t) => {
  const ferry = await server(t)
  const image = await seedImage(ferry.url, 'public/tool', 'v1', { auth: cred('root') })
  const manifest = await call(`${ferry.url}/v2/public/tool/manifests/v1`, 'GET', undefined, undefined, { accept: image.manifest.mediaType })
  t.equal(manifest.status, 200, 'anonymous pull of public/**')
  t.equal(sha256(manifest.body), image.manifest.digest)
  t.equal((await call(`${ferry.url}/v2/public/tool/tags/list`, 'GET', undefined)).status, 200, 'tags too')
  t.equal((await call(`${ferry.url}/v2/public/tool/blobs/uploads/`, 'POST', undefined)).status, 401, 'anonymous push: 401')
  t.equal((await call(`${ferry.url}/v2/public/tool/manifests/v1`, 'DELETE', undefined)).status, 401, 'anonymous delete: 401')
  t.equal(
    (await call(`${ferry.url}/v2/public/tool/manifests/v1`, 'GET', 'dave', undefined, { accept: image.manifest.mediaType })).status,
    200,
    'accounts may pull what anonymous may',
  )
  t.equal((await call(`${ferry.url}/v2/public/tool/blobs/uploads/`, 'POST', 'alice')).status, 403, 'but not push there without a binding')

  await t.rejects(
    loadConfig({ overrides: { auth: { roles: [{ subjects: ['anonymous'], namespaces: ['**'], role: 'editor' }] } } }),
    { message: /auth\.roles\.0\.subjects: "anonymous" can only be a viewer/ },
    'binding anonymous to editor is a config error, not a silent no-op',
  )
})

t.test('no accounts: read-only, whatever is sent', async (t) => {
  const ferry = await startAuthServer(t, {})
  t.equal((await call(`${ferry.url}/v2/`, 'GET', undefined)).status, 200, '/v2/ answers anonymous clients')
  t.equal((await call(`${ferry.url}/v2/any/repo/tags/list`, 'GET', undefined)).status, 401, 'pushed namespaces are private by default')
  const push = await call(`${ferry.url}/v2/any/repo/blobs/uploads/`, 'POST', undefined)
  t.equal(push.status, 401, 'anonymous push: 401')
  t.equal(
    (await fetch(`${ferry.url}/v2/any/repo/blobs/uploads/`, { method: 'POST', headers: { authorization: basic('root', 'root-pw') } }))
      .status,
    401,
    'no account to log in with',
  )
})

t.test('namespace patterns: * is one component, ** any depth', async (t) => {
  const ferry = await startAuthServer(t, {
    users,
    auth: {
      anonymousPull: [],
      roles: [
        { subjects: ['bob'], namespaces: ['team-b/*'], role: 'editor' },
        { subjects: ['alice'], namespaces: ['**/tools'], role: 'editor' },
      ],
    },
  })
  const push = async (who: User, repo: string) => (await call(`${ferry.url}/v2/${repo}/blobs/uploads/`, 'POST', who)).status
  t.equal(await push('bob', 'team-b/app'), 202, 'team-b/* covers team-b/app')
  t.equal(await push('bob', 'team-b/app/sub'), 403, 'but not team-b/app/sub')
  t.equal(await push('bob', 'team-b'), 403, 'nor team-b itself')
  t.equal(await push('alice', 'tools'), 202, '**/tools covers tools')
  t.equal(await push('alice', 'x/y/tools'), 202, 'and x/y/tools')
  t.equal(await push('alice', 'x/tools-2'), 403, 'not x/tools-2')
  t.equal(
    (await call(`${ferry.url}/v2/team-b/app/tags/list`, 'GET', undefined)).status,
    401,
    'anonymousPull [] : anonymous pull needs a login',
  )
})

t.test('cross-repository mount needs pull on `from`; without it the mount is an ordinary upload', async (t) => {
  const ferry = await server(t)
  const secret = await seedImage(ferry.url, 'secret/app', 'v1', { auth: cred('root') })
  const visible = await seedImage(ferry.url, 'team-a/base', 'v1', { auth: cred('root') })
  const mount = (from: string, digest: string) =>
    call(`${ferry.url}/v2/team-a/new/blobs/uploads/?mount=${digest}&from=${from}`, 'POST', 'bob')
  const denied = await mount('secret/app', secret.layers[0]!.digest)
  t.equal(denied.status, 202, 'no pull on secret/app: an upload session, not a mount')
  t.equal(
    (await call(`${ferry.url}/v2/team-a/new/blobs/${secret.layers[0]!.digest}`, 'HEAD', 'bob')).status,
    404,
    'and the blob did not arrive',
  )
  const allowed = await mount('team-a/base', visible.layers[0]!.digest)
  t.equal(allowed.status, 201, 'pull on team-a/base: mounted')
  t.equal(allowed.headers.get('location'), `/v2/team-a/new/blobs/${visible.layers[0]!.digest}`)
})

t.test('_catalog: admin on ** only', async (t) => {
  const ferry = await server(t)
  await seedImage(ferry.url, 'team-a/app', 'v1', { auth: cred('root') })
  const anonymous = await call(`${ferry.url}/v2/_catalog`, 'GET', undefined)
  t.equal(anonymous.status, 401)
  t.equal(parseChallenge(anonymous.headers.get('www-authenticate'))?.scope, 'registry:catalog:*')
  t.equal((await call(`${ferry.url}/v2/_catalog`, 'GET', 'bob')).status, 403, 'editor: 403')
  t.equal((await call(`${ferry.url}/v2/_catalog`, 'GET', 'carol')).status, 403, 'admin of team-a/** only: 403')
  const root = await call(`${ferry.url}/v2/_catalog`, 'GET', 'root')
  t.equal(root.status, 200, 'admin on **: 200')
  t.same(JSON.parse(root.body), { repositories: ['team-a/app'] })
})

t.test('no role binding configured: every account is an admin on ** (--htpasswd alone)', async (t) => {
  const ferry = await startAuthServer(t, { users: { alice: 'alice-pw' } })
  const image = await seedImage(ferry.url, 'any/where', 'v1', { auth: cred('alice') })
  t.equal((await call(`${ferry.url}/v2/any/where/manifests/v1`, 'DELETE', 'alice')).status, 202, 'delete')
  t.equal((await call(`${ferry.url}/v2/_catalog`, 'GET', 'alice')).status, 200, 'catalog')
  t.equal((await call(`${ferry.url}/v2/any/where/blobs/uploads/`, 'POST', undefined)).status, 401, 'anonymous push: still 401')
  t.equal(
    (await call(`${ferry.url}/v2/any/where/blobs/${image.layers[0]!.digest}`, 'GET', undefined)).status,
    401,
    'no anonymous pull of pushed content by default',
  )
})

t.test('a mirror route is authorized on the repository it reaches, not on the path', async (t) => {
  const { startMirrorServer, upstreamConfig } = await import('../helpers/mirror-server.js')
  const { closedPort } = await import('../helpers/http-stub.js')
  const { htpasswdLine } = await import('../helpers/htpasswd.js')
  const dead = `http://127.0.0.1:${await closedPort()}`
  const hash = (await htpasswdLine('bob', 'bob-pw')).split(':')[1]!
  const ferry = await startMirrorServer(
    {
      upstreams: [upstreamConfig('gcr.io', dead), upstreamConfig('docker.io', dead)],
      defaultUpstream: 'gcr.io',
      namespaces: [{ name: 'test-namespace', upstream: 'gcr.io' }],
    },
    {
      auth: {
        users: [{ name: 'bob', password: hash, groups: [] }],
        roles: [{ subjects: ['bob'], namespaces: ['team-a/**', 'test-namespace/*'], role: 'editor' }],
        anonymousMirrorPull: ['gcr.io/**'],
      },
    },
  )
  t.teardown(() => ferry.close())
  const push = async (path: string) => (await call(`${ferry.url}/v2/${path}`, 'POST', 'bob')).status
  t.equal(await push('team-a/x/blobs/uploads/'), 202, 'team-a/x (default upstream: stored as team-a/x)')
  t.equal(await push('team-a/x/blobs/uploads/?ns=docker.io'), 403, "?ns=docker.io lands in docker.io/team-a/x: not bob's")
  t.equal(await push('docker.io/team-a/x/blobs/uploads/'), 403, 'nor by its path prefix')
  t.equal(
    await push('test-namespace/v2/app/blobs/uploads/'),
    202,
    "hosts.toml's inserted /v2 reaches test-namespace/app, which test-namespace/* covers",
  )
  const anonymous = await call(`${ferry.url}/v2/pause/manifests/3.9?ns=docker.io`, 'HEAD', undefined)
  t.equal(anonymous.status, 401)
  t.equal(
    parseChallenge(anonymous.headers.get('www-authenticate'))?.scope,
    'repository:docker.io/pause:pull',
    'the challenge names the repository reached',
  )
  const token = (await (
    await fetch(`${ferry.url}/token?scope=repository:docker.io/pause:pull&scope=repository:pause:pull`, {
      headers: { authorization: basic('bob', 'bob-pw') },
    })
  ).json()) as { token: string }
  t.equal(
    (await fetch(`${ferry.url}/v2/team-a/y/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${token.token}` } }))
      .status,
    401,
    'a token for other names does not push to team-a/y',
  )
})
