// The Docker token service behind the /token realm: a password (GET with Basic, or the OAuth2
// POST form), a refresh token, or nothing (anonymous) buys a short-lived access token whose
// `access` claim is the requested scopes intersected with what the principal may do now.
import type { Access, Principal, TokenRequest, TokenResult, TokenService } from '../core/auth.js'
import { isRepositoryName } from '../core/reference.js'
import type { Audit } from './audit.js'
import { anonymous } from './credential-authenticator.js'
import type { LoginLimiter } from './login-limiter.js'
import type { RoleAuthorizer } from './role-authorizer.js'
import { parseScope, repositoryActions } from './scope.js'
import { credentialVersion, sameCredentialVersion, type TokenCodec } from './tokens.js'
import type { UserStore } from './users.js'

export interface DockerTokenServiceDeps {
  service: string
  users: UserStore
  limiter: LoginLimiter
  codec: TokenCodec
  authorizer: RoleAuthorizer
  audit: Audit
  onFailedLogin?: () => void
  onIssued?: () => void
}

const maxScopes = 32

export class DockerTokenService implements TokenService {
  constructor(private readonly deps: DockerTokenServiceDeps) {}

  async issue(request: TokenRequest): Promise<TokenResult> {
    if (request.service !== undefined && request.service !== this.deps.service) {
      return { outcome: 'invalid-request', reason: `unknown service "${request.service.slice(0, 100)}"` }
    }
    if (request.scopes.length > maxScopes) return { outcome: 'invalid-request', reason: `at most ${maxScopes} scopes per request` }
    const who = await this.principal(request)
    if (who.outcome !== 'ok') return who
    const { principal, hash } = who
    const cv = credentialVersion(hash)
    const access = this.grant(principal, request.scopes)
    const { token, issuedAt } = await this.deps.codec.issueAccess(principal.name, access, cv)
    const response: Extract<TokenResult, { outcome: 'ok' }>['response'] = {
      token,
      access_token: token,
      expires_in: this.deps.codec.accessTtlSeconds,
      issued_at: issuedAt.toISOString(),
    }
    if (request.offline && !principal.anonymous) response.refresh_token = await this.deps.codec.issueRefresh(principal.name, cv)
    this.deps.onIssued?.()
    return { outcome: 'ok', response }
  }

  private async principal(
    request: TokenRequest,
  ): Promise<{ outcome: 'ok'; principal: Principal; hash: string | undefined } | Exclude<TokenResult, { outcome: 'ok' }>> {
    const { grant, remote } = request
    if (grant.type === 'anonymous') return { outcome: 'ok', principal: anonymous, hash: undefined }
    const via = grant.type === 'password' ? 'token-password' : 'token-refresh'
    const user = grant.type === 'password' ? grant.username : undefined
    const retryAfterSeconds = this.deps.limiter.retryAfter(remote)
    if (retryAfterSeconds > 0) {
      this.deps.audit({ event: 'login-rate-limited', user, remote, via })
      return { outcome: 'rate-limited', retryAfterSeconds }
    }
    const account =
      grant.type === 'password' ? await this.deps.users.verify(grant.username, grant.password) : await this.refreshed(grant.refreshToken)
    if (!account) {
      this.deps.limiter.fail(remote)
      this.deps.onFailedLogin?.()
      const reason = grant.type === 'password' ? 'wrong user name or password' : 'invalid, expired or revoked refresh token'
      this.deps.audit({ event: 'login-failed', user, remote, via, reason })
      return { outcome: 'invalid-grant', reason }
    }
    return { outcome: 'ok', principal: { name: account.name, groups: account.groups, anonymous: false, via: 'basic' }, hash: account.hash }
  }

  private async refreshed(refreshToken: string) {
    const verified = await this.deps.codec.verifyRefresh(refreshToken)
    const account = verified && this.deps.users.get(verified.subject)
    if (!account || !sameCredentialVersion(credentialVersion(account.hash), verified.credentialVersion)) return undefined
    return account
  }

  /** Requested ∩ allowed, one entry per resource; scopes that are malformed or grant nothing are left out. */
  private grant(principal: Principal, scopes: readonly string[]): Access[] {
    const granted = new Map<string, Access>()
    for (const text of scopes) {
      const scope = parseScope(text)
      if (!scope) continue
      let actions: string[]
      if (scope.type === 'registry') {
        if (scope.name !== 'catalog' || !scope.actions.includes('*')) continue
        actions = this.deps.authorizer.rolesAllow(principal, { type: 'registry', name: 'catalog', action: '*' }) ? ['*'] : []
      } else {
        if (!isRepositoryName(scope.name)) continue
        actions = repositoryActions(scope.actions).filter((action) =>
          this.deps.authorizer.rolesAllow(principal, { type: 'repository', name: scope.name, action }),
        )
      }
      if (actions.length === 0) continue
      const key = `${scope.type}:${scope.name}`
      const existing = granted.get(key)
      if (existing) existing.actions = [...new Set([...existing.actions, ...actions])]
      else granted.set(key, { type: scope.type, name: scope.name, actions })
    }
    return [...granted.values()]
  }
}
