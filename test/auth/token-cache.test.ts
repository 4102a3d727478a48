// Verified access tokens are remembered (#18: a signature check per request cost more than the
// rest of a manifest GET), but never past what an uncached check would accept: not once the token
// expired, and not once the key that signed it stopped verifying (rotated out past its overlap).
import pino from 'pino'
import t from 'tap'
import { generateSigningKey, KeyRing } from '../../src/auth/key-ring.js'
import { TokenCodec } from '../../src/auth/tokens.js'

const access = [{ type: 'repository' as const, name: 'team/app', actions: ['pull'] }]

async function codec(overlapMs: number, ttlMs: number) {
  let clock = Date.now()
  const now = (): number => clock
  const ring = await KeyRing.open({ file: undefined, overlapMs, logger: pino({ level: 'silent' }), now })
  const tokens = new TokenCodec(ring, { issuer: 'ferry', service: 'ferry', ttlMs, refreshTtlMs: ttlMs, now })
  return { ring, tokens, advance: (ms: number) => void (clock += ms) }
}

t.test('a token is verified once, then answered from memory', async (t) => {
  const { ring, tokens } = await codec(60_000, 60_000)
  const { token } = await tokens.issueAccess('alice', access, 'cv')
  t.same(await tokens.verifyAccess(token), { subject: 'alice', access, credentialVersion: 'cv' }, 'verified')
  // The key's public half no longer matches the token's signature: only a remembered
  // verification still accepts the token.
  ring.signing.publicKey = (await generateSigningKey()).publicKey
  t.same(await tokens.verifyAccess(token), { subject: 'alice', access, credentialVersion: 'cv' }, 'remembered')
  const { token: other } = await tokens.issueAccess('bob', access, 'cv')
  t.equal(await tokens.verifyAccess(other), undefined, 'another token is checked on its own')
})

t.test('a remembered token is rejected once it expires', async (t) => {
  const { tokens, advance } = await codec(60_000, 2_000)
  const { token } = await tokens.issueAccess('alice', access, undefined)
  t.ok(await tokens.verifyAccess(token), 'valid at first')
  advance(1_000)
  t.ok(await tokens.verifyAccess(token), 'still valid')
  advance(1_500)
  t.equal(await tokens.verifyAccess(token), undefined, 'rejected once expired')
})

t.test('a remembered token is rejected once its key stopped verifying after a rotation', async (t) => {
  const { ring, tokens, advance } = await codec(1_000, 3_600_000)
  const { token } = await tokens.issueAccess('alice', access, undefined)
  t.ok(await tokens.verifyAccess(token), 'valid at first')
  ring.rotate(await generateSigningKey())
  t.ok(await tokens.verifyAccess(token), 'valid during the overlap')
  advance(2_000)
  t.equal(await tokens.verifyAccess(token), undefined, 'rejected once the overlap ended, though the token has not expired')
  const { token: fresh } = await tokens.issueAccess('alice', access, undefined)
  t.ok(await tokens.verifyAccess(fresh), 'a token of the new key works')
})
