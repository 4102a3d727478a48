// Authenticates a request from its Authorization header: none is anonymous; Basic is checked
// against the accounts (bcrypt), subject to failed-login rate limiting; Bearer must be an access
// token from our token service whose account still exists with the same password.
import type { Authentication, Authenticator, Credentials, Principal } from '../core/auth.js'
import type { Audit } from './audit.js'
import type { LoginLimiter } from './login-limiter.js'
import { credentialVersion, sameCredentialVersion, type TokenCodec } from './tokens.js'
import type { UserStore } from './users.js'

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

export class CredentialAuthenticator implements Authenticator {
  readonly challenge: { service: string; realm?: string | undefined }
  /** Credential versions by password hash: a bearer request compares one, a hash per request cost as much as the rest. */
  private readonly versions = new Map<string, string | undefined>()

  constructor(private readonly deps: CredentialAuthenticatorDeps) {
    this.challenge = deps.challenge
  }

  hasAccounts(): boolean {
    return this.deps.users.size > 0
  }

  async authenticate({ authorization, remote }: Credentials): Promise<Authentication> {
    if (authorization === undefined || authorization.trim() === '') return { outcome: 'ok', principal: anonymous }
    const space = authorization.indexOf(' ')
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase()
    const value = space < 0 ? '' : authorization.slice(space + 1)
    if (scheme === 'basic') return this.basic(value, remote)
    if (scheme === 'bearer') return this.bearer(value.trim())
    return { outcome: 'invalid', reason: 'unsupported authorization scheme' }
  }

  private async basic(value: string, remote: string): Promise<Authentication> {
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
    return { outcome: 'ok', principal: { name: account.name, groups: account.groups, anonymous: false, via: 'basic' } }
  }

  private async bearer(token: string): Promise<Authentication> {
    const verified = await this.deps.codec.verifyAccess(token)
    if (!verified) return { outcome: 'invalid', reason: 'invalid or expired token' }
    if (verified.subject === '') return { outcome: 'ok', principal: { ...anonymous, access: verified.access, via: 'bearer' } }
    // Checked on every request, so removing an account or changing its password ends its tokens.
    const account = this.deps.users.get(verified.subject)
    if (!account || !sameCredentialVersion(this.versionOf(account.hash), verified.credentialVersion)) {
      return { outcome: 'invalid', reason: 'token of a removed or changed account' }
    }
    return {
      outcome: 'ok',
      principal: { name: account.name, groups: account.groups, anonymous: false, access: verified.access, via: 'bearer' },
    }
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
