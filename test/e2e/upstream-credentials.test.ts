// Pulling through Ferry from a real token-auth upstream: CNCF distribution with `auth: token`,
// fed by a token server written for the test (gcr.io-style `_json_key`, Google's OAuth2
// JWT-bearer token_uri, user/password, identity tokens). Every credential kind Ferry reads is
// used for a real pull; key rotation while pulls run, a corrupt replacement, and an upstream
// that refuses us are shown from the client's side; no secret may appear in the trace logs.
import { chmod, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { UpstreamConfig } from '../../src/config/schema.js'
import { distributionUnavailable } from '../helpers/distribution.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { pkiUnavailable } from '../helpers/pki.js'
import { pushManifest, seedImage, sha256, type SeededImage } from '../helpers/seed.js'
import { startTokenAuthUpstream, type TokenAuthUpstream } from '../helpers/token-auth-upstream.js'

const skip = distributionUnavailable() ?? pkiUnavailable()
if (skip) t.plan(0, skip)

const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

type Upstream = TokenAuthUpstream

const startUpstream = (t: Test): Promise<Upstream> => startTokenAuthUpstream(t)

async function mirror(t: Test, upstreams: UpstreamConfig[], pullCredentialConfigPath?: string): Promise<MirrorServer> {
  const server = await startMirrorServer(
    { upstreams, ...(pullCredentialConfigPath ? { pullCredentialConfigPath } : {}) },
    { logLevel: 'trace' },
  )
  t.teardown(() => server.close())
  return server
}

/** A whole pull through Ferry: the manifest by tag, then every blob, checked against its digest. */
async function pull(
  ferry: string,
  path: string,
  tag: string,
  image: SeededImage,
): Promise<{ ok: boolean; status: number; error?: { code: string; message: string } }> {
  const manifest = await fetch(`${ferry}/v2/${path}/manifests/${tag}`, { headers: { accept } })
  if (manifest.status !== 200) {
    const body = (await manifest.json().catch(() => ({}))) as { errors?: Array<{ code: string; message: string }> }
    return { ok: false, status: manifest.status, ...(body.errors?.[0] ? { error: body.errors[0] } : {}) }
  }
  const bytes = Buffer.from(await manifest.arrayBuffer())
  if (sha256(bytes) !== image.manifest.digest) return { ok: false, status: 200 }
  for (const blob of [image.config, ...image.layers]) {
    const response = await fetch(`${ferry}/v2/${path}/blobs/${blob.digest}`)
    const body = Buffer.from(await response.arrayBuffer())
    if (response.status !== 200 || sha256(body) !== blob.digest) return { ok: false, status: response.status }
  }
  return { ok: true, status: 200 }
}

/** Makes `image` (pushed to `from`) available under `to` too: blob mounts and the manifest. */
async function copyImage(registry: string, from: string, to: string, image: SeededImage): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const mounted = await fetch(`${registry}/v2/${to}/blobs/uploads/?mount=${blob.digest}&from=${from}`, { method: 'POST' })
    await mounted.arrayBuffer()
    if (mounted.status !== 201) throw new Error(`mount into ${to}: ${mounted.status}`)
  }
  await pushManifest(registry, to, 'v1', image.manifest.bytes, image.manifest.mediaType)
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text)
  await rename(`${path}.new`, path)
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

async function reloadCount(server: MirrorServer, upstream: string, result: 'ok' | 'error'): Promise<number> {
  const metric = await server.composed.metrics.upstreamCredentialReloads.get()
  return metric.values.find((v) => v.labels.upstream === upstream && v.labels.result === result)?.value ?? 0
}

/** No secret (key material, passwords, tokens) in any captured log line. */
function assertNoSecrets(t: Test, logs: string[], secrets: string[]): void {
  const all = logs.join('\n')
  t.ok(logs.length > 0, 'logs were captured')
  for (const secret of secrets) t.notOk(all.includes(secret), `secret ${secret.slice(0, 12)}… absent from ${logs.length} log lines`)
}

function keySecrets(keyJson: string): string[] {
  const { private_key: pem } = JSON.parse(keyJson) as { private_key: string }
  // A run of the PEM body; the key's lines as JSON-escaped and raw.
  const body = pem.split('\n').slice(1, -2)
  return [body[3]!, body[10]!, Buffer.from(keyJson).toString('base64').slice(40, 100)]
}

t.test('gcrKeyPath, both flows: pulls work, the right grant is used, nothing secret is logged', async (t) => {
  const up = await startUpstream(t)
  const image = await seedImage(up.seeder.url, 'team/app', 'v1')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-keys-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const flow of ['jsonKey', 'oauth2'] as const) {
    const account = up.tokens.rotateKey(`puller-${flow.toLowerCase()}@ferry-test.iam.gserviceaccount.com`)
    const keyPath = join(dir, `${flow}.json`)
    await writeFile(keyPath, account.keyJson)
    const server = await mirror(t, [upstreamConfig('gcr.io', up.registry.url, { gcrKeyPath: keyPath, gcrKeyFlow: flow })])
    t.same(await pull(server.url, 'team/app', 'v1', image), { ok: true, status: 200 }, `${flow}: pulled`)
    const expected = flow === 'jsonKey' ? `json_key:${account.email}` : `oauth2:${account.email}`
    t.ok(up.tokens.grants.includes(expected), `${flow}: tokens were granted as ${expected}`)
    assertNoSecrets(t, server.logs, [...keySecrets(account.keyJson), ...up.tokens.issued])
  }
  const oauthExchanges = up.tokens.requests.filter((r) => r.url === '/oauth2/token')
  t.equal(oauthExchanges.length, 1, 'one OAuth2 exchange served every token request')
})

t.test('a base64-encoded key file is sent as _json_key_base64', async (t) => {
  const up = await startUpstream(t)
  const image = await seedImage(up.seeder.url, 'team/b64', 'v1')
  const account = up.tokens.rotateKey('b64@ferry-test.iam.gserviceaccount.com')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-keys-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'key.b64'), Buffer.from(account.keyJson).toString('base64'))
  const server = await mirror(t, [upstreamConfig('gcr.io', up.registry.url, { gcrKeyPath: join(dir, 'key.b64') })])
  t.same(await pull(server.url, 'team/b64', 'v1', image), { ok: true, status: 200 })
  const basic = up.tokens.requests.find((r) => r.url.startsWith('/token'))?.headers.authorization ?? ''
  t.match(Buffer.from(basic.slice(6), 'base64').toString(), /^_json_key_base64:/)
})

t.test('Docker config.json: auth, username/password, identitytoken and a credential helper, one file for all upstreams', async (t) => {
  const up = await startUpstream(t)
  const image = await seedImage(up.seeder.url, 'library/app', 'v1')
  up.tokens.addUser('hubuser', 'hub:pass:with:colons')
  up.tokens.addUser('robot$ci', 'harbor-robot-secret')
  up.tokens.addUser('helper-user', 'helper-secret')
  up.tokens.addRefreshToken('identity-refresh-token', 'artifact-user')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-dockercfg-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The helper answers for its own registry only, as docker-credential-helpers do.
  await writeFile(
    join(dir, 'docker-credential-ferrytest'),
    '#!/bin/sh\n[ "$1" = get ] || exit 3\nread host\n[ "$host" = "helper.test" ] || { echo "credentials not found in native keychain"; exit 1; }\n' +
      'printf \'{"ServerURL":"%s","Username":"helper-user","Secret":"helper-secret"}\' "$host"\n',
  )
  await chmod(join(dir, 'docker-credential-ferrytest'), 0o755)
  const path = process.env.PATH
  process.env.PATH = `${dir}${delimiter}${path ?? ''}`
  t.teardown(() => void (process.env.PATH = path))
  const configPath = join(dir, 'config.json')
  await writeFile(
    configPath,
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass:with:colons').toString('base64') },
        'harbor.test': { username: 'robot$ci', password: 'harbor-robot-secret' },
        'https://europe-docker.pkg.dev': { identitytoken: 'identity-refresh-token' },
      },
      credHelpers: { 'helper.test': 'ferrytest' },
    }),
  )
  // Every upstream is the same distribution: config.json entries match by name and alias here.
  const server = await mirror(
    t,
    [
      upstreamConfig('docker.io', up.registry.url, { aliases: ['registry-1.docker.io'] }),
      upstreamConfig('harbor.test', up.registry.url),
      upstreamConfig('europe-docker.pkg.dev', up.registry.url),
      upstreamConfig('helper.test', up.registry.url),
      upstreamConfig('anonymous.test', up.registry.url),
    ],
    configPath,
  )
  for (const [name, grant] of [
    ['docker.io', 'user:hubuser'],
    ['harbor.test', 'user:robot$ci'],
    ['europe-docker.pkg.dev', 'refresh:artifact-user'],
    ['helper.test', 'user:helper-user'],
  ] as const) {
    t.same(await pull(server.url, `${name}/library/app`, 'v1', image), { ok: true, status: 200 }, `${name} pulled`)
    t.equal(up.tokens.grants.at(-1), grant, `${name} authenticated as ${grant}`)
  }
  const anonymous = await pull(server.url, 'anonymous.test/library/app', 'v1', image)
  t.equal(anonymous.status, 403, 'an upstream without an entry pulls anonymously, and is refused')
  t.match(anonymous.error, { code: 'DENIED', message: /anonymous\.test denied access/, detail: /no credentials are configured/ })
  assertNoSecrets(t, server.logs, [
    'hub:pass:with:colons',
    'harbor-robot-secret',
    'identity-refresh-token',
    'helper-secret',
    ...up.tokens.issued,
  ])
})

t.test('refused credentials reach clients as an upstream problem naming the upstream, never as 401', async (t) => {
  const up = await startUpstream(t)
  const image = await seedImage(up.seeder.url, 'team/app', 'v1')
  up.tokens.addUser('no-rights', 'pw-no-rights')
  up.tokens.denyAccess('user:no-rights')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-refused-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const configPath = join(dir, 'config.json')
  await writeFile(
    configPath,
    JSON.stringify({
      auths: {
        'wrong.test': { username: 'nobody', password: 'wrong-password' },
        'norights.test': { username: 'no-rights', password: 'pw-no-rights' },
      },
    }),
  )
  const server = await mirror(
    t,
    [upstreamConfig('wrong.test', up.registry.url), upstreamConfig('norights.test', up.registry.url)],
    configPath,
  )

  // The token server says no: Ferry could not authenticate upstream.
  const wrong = await fetch(`${server.url}/v2/wrong.test/team/app/manifests/v1`, { headers: { accept } })
  t.equal(wrong.status, 503)
  t.equal(wrong.headers.get('www-authenticate'), null, 'no challenge that would make the client send its own credentials')
  t.match(await wrong.json(), { errors: [{ code: 'UNAVAILABLE', message: /upstream wrong\.test refused our credentials/ }] })

  // A token without the rights: the registry answers 401 even to our token.
  const denied = await fetch(`${server.url}/v2/norights.test/team/app/manifests/v1`, { headers: { accept } })
  t.equal(denied.status, 403)
  t.equal(denied.headers.get('www-authenticate'), null)
  t.match(await denied.json(), { errors: [{ code: 'DENIED', message: /upstream norights\.test denied access/ }] })
  t.ok((await pull(server.url, 'norights.test/team/app', 'v1', image)).ok === false)
  assertNoSecrets(t, server.logs, ['wrong-password', 'pw-no-rights', ...up.tokens.issued])
})

for (const flow of ['jsonKey', 'oauth2'] as const) {
  t.test(`${flow}: the key file rotates while pulls run; a corrupt replacement keeps the working key`, async (t) => {
    const up = await startUpstream(t)
    // Every pull asks for a repository Ferry has not cached, so every pull needs the upstream
    // (a cached one would be served stale while the upstream refuses us, hiding the failure).
    const image = await seedImage(up.seeder.url, 'rotate/app0', 'v1')
    // Each pull's repository is made upstream just before it (a run uses about 60: seeding all 200
    // up front took 2.5 s).
    const repositories = 200
    const email = `rotating-${flow.toLowerCase()}@ferry-test.iam.gserviceaccount.com`
    const first = up.tokens.rotateKey(email)
    const dir = await mkdtemp(join(tmpdir(), 'ferry-rotate-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const keyPath = join(dir, 'key.json')
    await writeFile(keyPath, first.keyJson)
    // The pulls refused between revocation and reload must not open the circuit for the rest.
    const breaker = { failures: 1_000, cooldown: 1_000 }
    const server = await mirror(t, [upstreamConfig('gcr.io', up.registry.url, { gcrKeyPath: keyPath, gcrKeyFlow: flow, breaker })])

    let next = 0
    const results: Array<{ phase: string; ok: boolean; status: number }> = []
    let phase = 'before'
    const pullNext = async () => {
      const i = next++
      if (i >= repositories) throw new Error('ran out of uncached repositories')
      if (i > 0) await copyImage(up.seeder.url, 'rotate/app0', `rotate/app${i}`, image)
      // The phase the pull started in: one started before the reload may end after it.
      const startedIn = phase
      const result = await pull(server.url, `rotate/app${i}`, 'v1', image)
      results.push({ phase: startedIn, ok: result.ok, status: result.status })
    }
    for (let i = 0; i < 10; i++) await pullNext()

    // Rotation as an operator does it: a new key is created (the old one revoked at once) and the
    // Secret is updated; Ferry's cached registry tokens were minted with the old key.
    phase = 'switching'
    const second = up.tokens.rotateKey(email)
    // Pulls keep running through the switch, but a bounded number of them: refused pulls are
    // quick, and a reload that is slow on a busy machine must not use up every uncached repository.
    const loop = (async () => {
      while (phase !== 'done') {
        if (phase === 'switching' && results.filter((r) => r.phase === 'switching').length >= 40) await sleep(25)
        else await pullNext()
      }
    })()
    await writeAtomically(keyPath, second.keyJson)
    await until('the rotated key to be loaded', async () => (await reloadCount(server, 'gcr.io', 'ok')) === 1)
    phase = 'after'
    await until('pulls after the switch', () => results.filter((r) => r.phase === 'after').length >= 5)
    phase = 'done'
    await loop
    t.same(
      results.filter((r) => r.phase === 'before' && !r.ok),
      [],
      'no failed pull before the rotation',
    )
    const switching = results.filter((r) => r.phase === 'switching')
    t.comment(
      `${switching.filter((r) => !r.ok).length} of ${switching.length} pulls refused between revocation and reload (expected: the old key was revoked first)`,
    )
    const after = results.filter((r) => r.phase === 'after')
    t.ok(after.length >= 5)
    t.same(
      after.filter((r) => !r.ok),
      [],
      'no failed pull once the new key is loaded',
    )
    const kind = flow === 'jsonKey' ? 'json_key' : 'oauth2'
    t.equal(up.tokens.grants.at(-1), `${kind}:${email}`, 'tokens now come from the new key')

    // A corrupt replacement: the working key stays in use, one error names the file.
    phase = 'corrupt'
    await writeAtomically(keyPath, '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEv')
    await until('the corrupt key to be rejected', async () => (await reloadCount(server, 'gcr.io', 'error')) === 1)
    await server.composed.reloadCredentials() // SIGHUP re-reads the same broken file: no second report
    for (let i = 0; i < 5; i++) await pullNext()
    t.same(
      results.filter((r) => r.phase === 'corrupt' && !r.ok),
      [],
      'pulls go on with the previous key',
    )
    t.equal(await reloadCount(server, 'gcr.io', 'error'), 1, 'counted once')
    const errors = server.logs.filter((l) => l.includes('upstream credentials file unusable'))
    t.equal(errors.length, 1, 'one error line')
    t.match(errors[0], keyPath, 'naming the file')
    t.match(errors[0], /is not valid JSON/)

    // A fixed file is picked up on SIGHUP as well as by the watch.
    const third = up.tokens.rotateKey(email)
    await writeAtomically(keyPath, third.keyJson)
    await server.composed.reloadCredentials()
    await until('the fixed key to be loaded', async () => (await reloadCount(server, 'gcr.io', 'ok')) === 2)
    for (let i = 0; i < 5; i++) await pullNext()
    t.same(
      results.slice(-5).map((r) => r.ok),
      [true, true, true, true, true],
      'pulls work with the third key',
    )
    assertNoSecrets(t, server.logs, [
      ...keySecrets(first.keyJson),
      ...keySecrets(second.keyJson),
      ...keySecrets(third.keyJson),
      'MIIEv',
      ...up.tokens.issued,
    ])
  })
}
