// Authenticates a request from its Authorization header: none is anonymous; Basic is checked
// against the accounts (bcrypt), subject to failed-login rate limiting; Bearer must be an access
// token from our token service whose account still exists with the same password.
//
// A client sends the same header on every request of a connection (containerd with a pull
// secret: Basic on each one). The header a connection's last request was verified with is
// remembered with the answer, for that connection only and as long as it lives: a next request
// sending the same header gets the answer again, after the checks that can change without the
// header changing (the account as loaded now, the token's expiry and key, the address's failed
// logins). Decoding and hashing the credentials again cost a tenth of a warm manifest GET (#18).
import type { Authentication, Authenticator, Credentials, Principal } from '../core/auth.js'
import type { Audit } from './audit.js'
import type { LoginLimiter } from './login-limiter.js'
import { credentialVersion, sameCredentialVersion, type TokenCodec, type VerifiedEntry } from './tokens.js'
import type { Account, UserStore } from './users.js'

export const anonymous: Principal = Object.freeze({ name: '', groups: [], anonymous: true, via: 'none' })

export interface CredentialAuthenticatorDeps {
  users: UserStore
  limiter: LoginLimiter
  codec: TokenCodec
  audit: Audit
  challenge: { service: string; realm?: string | undefined }
  onFailedLogin?: () => void
}

/** `Basic <base64(user:password)>` → the pair, split at the first colon; undefined when malformed. */
export function decodeBasic(value: string): { username: string; password: string } | undefined {
  const text = Buffer.from(value.trim(), 'base64').toString('utf8')
  const colon = text.indexOf(':')
  if (colon <= 0) return undefined
  return { username: text.slice(0, colon), password: text.slice(colon + 1) }
}

/** What a connection's last credentials were verified as (only successes are remembered). */
interface ConnectionAnswer {
  authorization: string
  answer: Authentication
  via: 'basic' | 'bearer'
  /** The account as verified; the answer stands while the store holds this same object (a reload replaces them all). */
  account: Account | undefined
  /** Bearer: the token's verified entry (expiry, signing key). */
  token: VerifiedEntry | undefined
}

export class CredentialAuthenticator implements Authenticator {
  readonly challenge: { service: string; realm?: string | undefined }
  /** Credential versions by password hash: a bearer request compares one, a hash per request cost as much as the rest. */
  private readonly versions = new Map<string, string | undefined>()
  /** Per connection, weakly: a closed connection's entry goes with it. */
  private readonly connections = new WeakMap<object, ConnectionAnswer>()

  constructor(private readonly deps: CredentialAuthenticatorDeps) {
    this.challenge = deps.challenge
  }

  hasAccounts(): boolean {
    return this.deps.users.size > 0
  }

  async authenticate({ authorization, remote, connection }: Credentials): Promise<Authentication> {
    if (authorization === undefined || authorization.trim() === '') return { outcome: 'ok', principal: anonymous }
    if (connection !== undefined) {
      const known = this.connections.get(connection)
      if (known !== undefined && known.authorization === authorization && this.stands(known, remote)) return known.answer
    }
    const space = authorization.indexOf(' ')
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase()
    const value = space < 0 ? '' : authorization.slice(space + 1)
    if (scheme === 'basic') return this.basic(value, remote, authorization, connection)
    if (scheme === 'bearer') return this.bearer(value.trim(), authorization, connection)
    return { outcome: 'invalid', reason: 'unsupported authorization scheme' }
  }

  /** Whether a remembered answer still holds: what could change without the header changing is checked again. */
  private stands(known: ConnectionAnswer, remote: string): boolean {
    if (known.account !== undefined && this.deps.users.get(known.account.name) !== known.account) return false
    // A login refused for the address's failed logins is refused with credentials it verified before.
    if (known.via === 'basic') return this.deps.limiter.retryAfter(remote) === 0
    return known.token !== undefined && this.deps.codec.isCurrent(known.token)
  }

  private remember(connection: object | undefined, known: ConnectionAnswer): Authentication {
    if (connection !== undefined) this.connections.set(connection, known)
    return known.answer
  }

  private async basic(value: string, remote: string, authorization: string, connection: object | undefined): Promise<Authentication> {
    const pair = decodeBasic(value)
    const retryAfterSeconds = this.deps.limiter.retryAfter(remote)
    if (retryAfterSeconds > 0) {
      this.deps.audit({ event: 'login-rate-limited', user: pair?.username, remote, via: 'basic' })
      return { outcome: 'rate-limited', retryAfterSeconds }
    }
    const account = pair && (await this.deps.users.verify(pair.username, pair.password))
    if (!account) {
      this.deps.limiter.fail(remote)
      this.deps.onFailedLogin?.()
      const reason = pair ? 'wrong user name or password' : 'malformed basic credentials'
      this.deps.audit({ event: 'login-failed', user: pair?.username, remote, via: 'basic', reason })
      return { outcome: 'invalid', reason }
    }
    const principal: Principal = Object.freeze({ name: account.name, groups: account.groups, anonymous: false, via: 'basic' })
    return this.remember(connection, { authorization, answer: { outcome: 'ok', principal }, via: 'basic', account, token: undefined })
  }

  private async bearer(token: string, authorization: string, connection: object | undefined): Promise<Authentication> {
    const entry = await this.deps.codec.verifiedAccess(token)
    if (!entry) return { outcome: 'invalid', reason: 'invalid or expired token' }
    const verified = entry.token
    if (verified.subject === '') {
      const principal: Principal = Object.freeze({ ...anonymous, access: verified.access, via: 'bearer' })
      return this.remember(connection, {
        authorization,
        answer: { outcome: 'ok', principal },
        via: 'bearer',
        account: undefined,
        token: entry,
      })
    }
    // Checked on every request, so removing an account or changing its password ends its tokens.
    const account = this.deps.users.get(verified.subject)
    if (!account || !sameCredentialVersion(this.versionOf(account.hash), verified.credentialVersion)) {
      return { outcome: 'invalid', reason: 'token of a removed or changed account' }
    }
    const principal: Principal = Object.freeze({
      name: account.name,
      groups: account.groups,
      anonymous: false,
      access: verified.access,
      via: 'bearer',
    })
    return this.remember(connection, { authorization, answer: { outcome: 'ok', principal }, via: 'bearer', account, token: entry })
  }

  private versionOf(hash: string): string | undefined {
    let version = this.versions.get(hash)
    if (version === undefined) {
      // Bounded by the accounts in use; a file rotated many times only empties it now and then.
      if (this.versions.size >= 1024) this.versions.clear()
      version = credentialVersion(hash)
      this.versions.set(hash, version)
    }
    return version
  }
}
