// Failed-login rate limiting, audit lines, and no secret in any log line, through the real server
// with the production logger (redaction included) at trace level.
import t from 'tap'
import { parseChallenge, startAuthServer } from '../helpers/auth-server.js'
import { basic } from '../helpers/htpasswd.js'
import { seedImage } from '../helpers/seed.js'

const roles = [
  { subjects: ['bob'], namespaces: ['team/**'], role: 'editor' as const },
  { subjects: ['root'], namespaces: ['**'], role: 'admin' as const },
]

t.test('failed logins are rate limited per client: 429 TOOMANYREQUESTS with Retry-After', async (t) => {
  const ferry = await startAuthServer(t, {
    users: { bob: 'bob-pw' },
    auth: { roles, anonymousPull: ['public/**'], failedLogins: { max: 3, window: 60_000 } },
  })
  const attempt = (password: string) => fetch(`${ferry.url}/v2/team/app/tags/list`, { headers: { authorization: basic('bob', password) } })
  for (let i = 1; i <= 3; i++) t.equal((await attempt(`guess-${i}`)).status, 401, `failure ${i}: 401`)
  const limited = await attempt('bob-pw')
  t.equal(limited.status, 429, 'after 3 failures even the right password is refused unchecked')
  t.match(await limited.json(), { errors: [{ code: 'TOOMANYREQUESTS' }] })
  const retryAfter = Number(limited.headers.get('retry-after'))
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s is within the window`)

  const token = await fetch(`${ferry.url}/token?scope=repository:team/app:pull`, { headers: { authorization: basic('bob', 'bob-pw') } })
  t.equal(token.status, 429, 'the token endpoint is limited too (GET)')
  t.ok(token.headers.get('retry-after'))
  const form = await fetch(`${ferry.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=password&username=bob&password=bob-pw',
  })
  t.equal(form.status, 429, 'and the POST form')

  t.equal(
    (await fetch(`${ferry.url}/v2/public/x/tags/list`)).status,
    404,
    'anonymous requests from the address still pass (404: nothing there)',
  )
  const anonymousToken = await fetch(`${ferry.url}/token?scope=repository:public/x:pull`)
  t.equal(anonymousToken.status, 200, 'as do anonymous token requests')
  const failures = await ferry.composed.metrics.registry.getSingleMetricAsString('ferry_auth_failed_logins_total')
  t.match(failures, /ferry_auth_failed_logins_total 3\b/, 'three failures counted, the refused attempts not')
})

t.test('audit lines for push, delete and login failure; no secret in any log line', async (t) => {
  const ferry = await startAuthServer(t, {
    users: { bob: 'bob-Secret-Pw-1', root: 'root-Secret-Pw-2' },
    auth: { roles },
    logLevel: 'trace',
  })
  const secrets = ['bob-Secret-Pw-1', 'root-Secret-Pw-2', 'wrong-Secret-Pw-3']
  const basicHeaders = [basic('bob', 'bob-Secret-Pw-1'), basic('root', 'root-Secret-Pw-2'), basic('bob', 'wrong-Secret-Pw-3')]
  secrets.push(...basicHeaders.map((h) => h.slice('Basic '.length)))

  // A push and a delete with Basic, a failed login, a token flow (GET and POST, with refresh).
  const image = await seedImage(ferry.url, 'team/app', 'v1', { auth: { username: 'bob', password: 'bob-Secret-Pw-1' } })
  t.equal(
    (await fetch(`${ferry.url}/v2/team/app/manifests/v1`, { method: 'DELETE', headers: { authorization: basicHeaders[1]! } })).status,
    202,
  )
  t.equal((await fetch(`${ferry.url}/v2/team/app/manifests/v1`, { headers: { authorization: basicHeaders[2]! } })).status, 401)
  const got = (await (
    await fetch(`${ferry.url}/token?scope=repository:team/app:pull,push&offline_token=true`, {
      headers: { authorization: basicHeaders[0]! },
    })
  ).json()) as { token: string; refresh_token: string }
  const posted = (await (
    await fetch(`${ferry.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: got.refresh_token,
        scope: 'repository:team/app:push',
      }).toString(),
    })
  ).json()) as { token: string }
  secrets.push(got.token, got.refresh_token, posted.token)
  const pushed = await fetch(`${ferry.url}/v2/team/app/manifests/v2`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${posted.token}`, 'content-type': image.manifest.mediaType },
    body: image.manifest.bytes,
  })
  t.equal(pushed.status, 201, 'push with a refreshed token')
  t.equal(
    (await fetch(`${ferry.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${got.token}x` } })).status,
    401,
  )
  const challenge = await fetch(`${ferry.url}/v2/team/app/blobs/uploads/`, { method: 'POST' })
  t.ok(parseChallenge(challenge.headers.get('www-authenticate')), 'an anonymous push is challenged')

  const records = ferry.records()
  const audit = records.filter((r) => r.audit === true)
  const manifestPush = audit.find((r) => r.action === 'push' && r.tag === 'v1' && r.status === 201)
  t.match(
    manifestPush,
    { user: 'bob', via: 'basic', repo: 'team/app', digest: image.manifest.digest, remote: '127.0.0.1', method: 'PUT' },
    'manifest push by bob',
  )
  t.ok(typeof manifestPush?.time === 'string', 'with the time')
  t.ok(
    audit.some((r) => r.action === 'push' && r.digest === image.layers[0]!.digest && r.status === 201),
    'blob commits too',
  )
  t.match(
    audit.find((r) => r.action === 'delete'),
    { user: 'root', repo: 'team/app', tag: 'v1', status: 202 },
    'the delete',
  )
  t.match(
    audit.find((r) => r.msg === 'login failed'),
    { user: 'bob', remote: '127.0.0.1', via: 'basic', reason: 'wrong user name or password' },
    'the failed login',
  )
  t.match(
    audit.find((r) => r.action === 'push' && r.tag === 'v2'),
    { user: 'bob', via: 'bearer', status: 201 },
    'a push with a token',
  )
  t.match(
    audit.find((r) => r.action === 'push' && r.user === 'anonymous'),
    { status: 401 },
    'a refused anonymous push',
  )
  t.notOk(
    audit.some((r) => r.method === 'PATCH' || (r.method === 'POST' && r.status === 202)),
    'no audit line for parts of a push that change nothing',
  )

  const all = ferry.logs.join('\n')
  t.ok(records.length > 20, `${records.length} log lines captured at trace level`)
  for (const secret of secrets) t.notOk(all.includes(secret), `no log line contains ${secret.slice(0, 12)}…`)
  t.notMatch(all, /"authorization"\s*:\s*"(?!\[redacted\])/i, 'no authorization header value')
  t.notMatch(all, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'nothing that looks like a JWT')
})

t.test('a refused push (403) says who was refused and how they logged in', async (t) => {
  const ferry = await startAuthServer(t, { users: { bob: 'bob-pw' }, auth: { roles } })
  const refused = await fetch(`${ferry.url}/v2/other/app/blobs/uploads/`, {
    method: 'POST',
    headers: { authorization: basic('bob', 'bob-pw') },
  })
  t.equal(refused.status, 403, 'bob may not push outside team/**')
  const token = (await (
    await fetch(`${ferry.url}/token?scope=repository:team/app:pull,push,delete`, { headers: { authorization: basic('bob', 'bob-pw') } })
  ).json()) as { token: string }
  const deleted = await fetch(`${ferry.url}/v2/team/app/manifests/v1`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${token.token}` },
  })
  t.equal(deleted.status, 403, 'an editor may not delete')
  const audit = ferry.records().filter((r) => r.audit === true)
  t.match(
    audit.find((r) => r.status === 403),
    { action: 'push', user: 'bob', via: 'basic', repo: 'other/app', method: 'POST' },
    'the 403 names the user and how they authenticated',
  )
  t.match(
    audit.find((r) => r.status === 403 && r.method === 'DELETE'),
    { action: 'delete', user: 'bob', via: 'bearer' },
    'and with a token',
  )
})
