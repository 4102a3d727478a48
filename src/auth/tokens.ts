// Issued tokens are JWTs signed by the key ring's current key. An access token carries the
// Docker `access` claim (what it allows, per repository); a refresh token carries
// `token_use: "refresh"` and no access, and is only accepted by the token endpoint. Both carry
// `cv`, a digest of the account's password hash when issued: a changed password revokes them.
//
// A client sends the same access token on every request of a pull, and a signature check costs
// more than the rest of a manifest GET (#18): a verified access token is remembered, bounded,
// under a digest of it (no token kept in memory), until it expires, and only while the key that
// signed it still verifies (a key past its overlap ends its tokens' entries too). jose is loaded
// on the first token signed or checked: a server nobody asks for a token never holds it.
import { createHash, hash as oneShotHash, randomUUID, timingSafeEqual } from 'node:crypto'
import type { JWTPayload } from 'jose'
import { LRUCache } from 'lru-cache'
import type { Access } from '../core/auth.js'
import { tokenAlgorithms, type KeyRing, type SigningKey } from './key-ring.js'

export interface TokenSettings {
  issuer: string
  /** The `aud` of every token: the service name of challenges. */
  service: string
  ttlMs: number
  refreshTtlMs: number
  now?: () => number
}

export interface VerifiedToken {
  subject: string
  access: Access[]
  credentialVersion: string | undefined
}

/** A short digest of an account's password hash; undefined for anonymous tokens. */
export function credentialVersion(hash: string | undefined): string | undefined {
  return hash === undefined ? undefined : createHash('sha256').update(hash).digest('base64url').slice(0, 22)
}

/** Constant-time comparison of two credential versions (either may be absent). */
export function sameCredentialVersion(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** A verified access token: what it says, the key that verified it, and when it expires (ms). */
export interface VerifiedEntry {
  token: VerifiedToken
  key: SigningKey
  expiresAt: number
}

/** Access tokens remembered as verified: a few per client, a pull's worth each. */
const verifiedTokens = 4096

export class TokenCodec {
  private readonly now: () => number
  private readonly verified = new LRUCache<string, VerifiedEntry>({ max: verifiedTokens })
  private jose: Promise<typeof import('jose')> | undefined

  constructor(
    private readonly ring: KeyRing,
    private readonly settings: TokenSettings,
  ) {
    this.now = settings.now ?? Date.now
  }

  get accessTtlSeconds(): number {
    return Math.max(1, Math.floor(this.settings.ttlMs / 1000))
  }

  async issueAccess(subject: string, access: Access[], cv: string | undefined): Promise<{ token: string; issuedAt: Date }> {
    const claims: JWTPayload = { access }
    if (cv !== undefined) claims.cv = cv
    return this.sign(claims, subject, this.settings.ttlMs)
  }

  async issueRefresh(subject: string, cv: string | undefined): Promise<string> {
    const claims: JWTPayload = { token_use: 'refresh' }
    if (cv !== undefined) claims.cv = cv
    return (await this.sign(claims, subject, this.settings.refreshTtlMs)).token
  }

  /** The token's subject and access; undefined for anything not a valid, current access token of ours. */
  async verifyAccess(token: string): Promise<VerifiedToken | undefined> {
    return (await this.verifiedAccess(token))?.token
  }

  /**
   * verifyAccess with what the answer stands on: a caller that remembers the entry (per
   * connection) re-checks it with isCurrent() instead of verifying the token again. Undefined
   * also for a valid token that cannot be remembered (no key or expiry to check it by).
   */
  async verifiedAccess(token: string): Promise<VerifiedEntry | undefined> {
    if (token.length > 16_384) return undefined
    // The one-shot hash(): half a createHash() chain's cost, and every bearer request pays it.
    const id = oneShotHash('sha256', token, 'base64url')
    const known = this.verified.get(id)
    if (known) {
      if (this.isCurrent(known)) return known
      this.verified.delete(id)
    }
    let key: SigningKey | undefined
    const payload = await this.verify(token, (used) => (key = used))
    if (!payload || payload.token_use !== undefined) return undefined
    const access = parseAccess(payload.access)
    if (!access) return undefined
    const verified = { subject: payload.sub ?? '', access, credentialVersion: typeof payload.cv === 'string' ? payload.cv : undefined }
    // jwtVerify required `exp`; the entry is never used at or past it.
    if (!key || typeof payload.exp !== 'number') return undefined
    const entry = { token: verified, key, expiresAt: payload.exp * 1000 }
    this.verified.set(id, entry)
    return entry
  }

  /** Whether a verified entry still stands: before its expiry, and its key still verifies. */
  isCurrent(entry: VerifiedEntry): boolean {
    return entry.expiresAt > this.now() && this.ring.verifying(entry.key.kid) === entry.key
  }

  async verifyRefresh(token: string): Promise<VerifiedToken | undefined> {
    const payload = await this.verify(token)
    if (!payload || payload.token_use !== 'refresh' || !payload.sub) return undefined
    return { subject: payload.sub, access: [], credentialVersion: typeof payload.cv === 'string' ? payload.cv : undefined }
  }

  private async sign(claims: JWTPayload, subject: string, ttlMs: number): Promise<{ token: string; issuedAt: Date }> {
    const { SignJWT } = await (this.jose ??= import('jose'))
    const key = this.ring.signing
    const issuedAt = Math.floor(this.now() / 1000)
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.service)
      .setSubject(subject)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + Math.max(1, Math.floor(ttlMs / 1000)))
      .setJti(randomUUID())
      .sign(key.privateKey)
    return { token, issuedAt: new Date(issuedAt * 1000) }
  }

  /** The payload of a token signed by one of the ring's keys (told to `onKey`), valid now. */
  private async verify(token: string, onKey: (key: SigningKey) => void = () => {}): Promise<JWTPayload | undefined> {
    if (token.length > 16_384) return undefined
    const { jwtVerify } = await (this.jose ??= import('jose'))
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = this.ring.verifying(header.kid)
          if (!key || key.alg !== header.alg) throw new Error('unknown signing key')
          onKey(key)
          return key.publicKey
        },
        {
          issuer: this.settings.issuer,
          audience: this.settings.service,
          algorithms: [...tokenAlgorithms],
          requiredClaims: ['exp', 'nbf', 'iat', 'sub'],
          currentDate: new Date(this.now()),
        },
      )
      return payload
    } catch {
      return undefined
    }
  }
}

function parseAccess(value: unknown): Access[] | undefined {
  if (!Array.isArray(value)) return undefined
  const result: Access[] = []
  for (const item of value) {
    if (typeof item !== 'object' || item === null) return undefined
    const { type, name, actions } = item as Record<string, unknown>
    if ((type !== 'repository' && type !== 'registry') || typeof name !== 'string' || !Array.isArray(actions)) return undefined
    if (!actions.every((a): a is string => typeof a === 'string')) return undefined
    result.push({ type, name, actions })
  }
  return result
}
