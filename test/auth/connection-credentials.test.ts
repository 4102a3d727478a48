// Credentials verified on a connection are remembered for its next requests (#18: containerd
// sends Basic on every request of a pull), and never past what a fresh check would accept: not
// with another header, not once the account changed, not while the address is refused for
// failed logins, not once a token expired or its key stopped verifying.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import t, { type Test } from 'tap'
import { CredentialAuthenticator } from '../../src/auth/credential-authenticator.js'
import { generateSigningKey, KeyRing } from '../../src/auth/key-ring.js'
import { LoginLimiter } from '../../src/auth/login-limiter.js'
import { credentialVersion, TokenCodec } from '../../src/auth/tokens.js'
import { UserStore } from '../../src/auth/users.js'
import { basic, writeHtpasswd } from '../helpers/htpasswd.js'

const access = [{ type: 'repository' as const, name: 'team/app', actions: ['pull'] }]

async function authenticator(t: Test, options: { overlapMs?: number; ttlMs?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-connection-credentials-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const htpasswd = join(dir, 'htpasswd')
  await writeHtpasswd(htpasswd, { alice: 'a-pw', bob: 'b-pw' })
  const logger = pino({ level: 'silent' })
  const users = await UserStore.open({ htpasswd, inline: [], logger, watch: false })
  t.teardown(() => users.close())
  let clock = Date.now()
  const now = (): number => clock
  const ring = await KeyRing.open({ file: undefined, overlapMs: options.overlapMs ?? 60_000, logger, now })
  const ttlMs = options.ttlMs ?? 3_600_000
  const codec = new TokenCodec(ring, { issuer: 'ferry', service: 'ferry', ttlMs, refreshTtlMs: ttlMs, now })
  const limiter = new LoginLimiter({ max: 2, windowMs: 60_000 })
  const auth = new CredentialAuthenticator({ users, limiter, codec, audit: () => {}, challenge: { service: 'ferry' } })
  return { auth, users, htpasswd, ring, codec, limiter, advance: (ms: number) => void (clock += ms) }
}

t.test('Basic credentials are verified once per connection, then answered from memory', async (t) => {
  const { auth } = await authenticator(t)
  const connection = {}
  const credentials = { authorization: basic('alice', 'a-pw'), remote: '10.0.0.1', connection }
  const first = await auth.authenticate(credentials)
  t.equal(first.outcome, 'ok')
  t.equal(await auth.authenticate(credentials), first, 'the same answer again on the same connection')
  const elsewhere = await auth.authenticate({ ...credentials, connection: {} })
  t.not(elsewhere, first, 'another connection is checked on its own')
  t.same(elsewhere, first, 'with the same outcome')
  t.not(await auth.authenticate({ ...credentials, connection: undefined }), first, 'without a connection nothing is remembered')

  const wrong = await auth.authenticate({ ...credentials, authorization: basic('alice', 'wrong') })
  t.equal(wrong.outcome, 'invalid', 'another header on the connection is checked on its own')
  const bob = await auth.authenticate({ ...credentials, authorization: basic('bob', 'b-pw') })
  t.equal(bob.outcome === 'ok' && bob.principal.name, 'bob', 'and answered as itself')
})

t.test('a remembered Basic answer ends when the account changes', async (t) => {
  const { auth, users, htpasswd } = await authenticator(t)
  const credentials = { authorization: basic('alice', 'a-pw'), remote: '10.0.0.1', connection: {} }
  t.equal((await auth.authenticate(credentials)).outcome, 'ok')
  await writeHtpasswd(htpasswd, { alice: 'a-new-pw', bob: 'b-pw' })
  t.ok(await users.reload(), 'reloaded')
  t.equal((await auth.authenticate(credentials)).outcome, 'invalid', 'the old password fails on the same connection')
  t.equal((await auth.authenticate({ ...credentials, authorization: basic('alice', 'a-new-pw') })).outcome, 'ok', 'the new one works')
  await writeHtpasswd(htpasswd, { bob: 'b-pw' })
  t.ok(await users.reload(), 'reloaded')
  t.equal((await auth.authenticate({ ...credentials, authorization: basic('alice', 'a-new-pw') })).outcome, 'invalid', 'removed')
})

t.test('an address refused for failed logins is refused with remembered credentials too', async (t) => {
  const { auth } = await authenticator(t)
  const connection = {}
  const credentials = { authorization: basic('alice', 'a-pw'), remote: '10.0.0.2', connection }
  t.equal((await auth.authenticate(credentials)).outcome, 'ok')
  for (let i = 0; i < 2; i++) await auth.authenticate({ ...credentials, authorization: basic('alice', `guess-${i}`), connection: {} })
  t.equal((await auth.authenticate(credentials)).outcome, 'rate-limited', 'as a fresh check would answer')
})

t.test('a token is verified once per connection, and not past its expiry or its key', async (t) => {
  const { auth, codec, ring, users, advance } = await authenticator(t, { overlapMs: 1_000, ttlMs: 600_000 })
  const cv = credentialVersion(users.get('alice')?.hash)
  const { token } = await codec.issueAccess('alice', access, cv)
  const connection = {}
  const credentials = { authorization: `Bearer ${token}`, remote: '10.0.0.3', connection }
  const first = await auth.authenticate(credentials)
  t.equal(first.outcome, 'ok')
  t.equal(await auth.authenticate(credentials), first, 'the same answer again on the same connection')
  ring.rotate(await generateSigningKey())
  t.equal(await auth.authenticate(credentials), first, 'during the overlap')
  advance(2_000)
  t.equal((await auth.authenticate(credentials)).outcome, 'invalid', 'not once the key stopped verifying')

  const { token: fresh } = await codec.issueAccess('alice', access, cv)
  const renewed = { ...credentials, authorization: `Bearer ${fresh}` }
  t.equal((await auth.authenticate(renewed)).outcome, 'ok', 'a token of the new key works')
  advance(600_000)
  t.equal((await auth.authenticate(renewed)).outcome, 'invalid', 'not once the token expired')
})
