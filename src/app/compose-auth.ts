// Builds authentication, authorization and the token service from the `auth` config section:
// the part of the composition root that knows the auth implementations.
import type { Logger } from 'pino'
import type { Authenticator, Authorizer, TokenService } from '../core/auth.js'
import type { AuthConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { auditLogger } from '../auth/audit.js'
import { CredentialAuthenticator } from '../auth/credential-authenticator.js'
import { KeyRing } from '../auth/key-ring.js'
import { LoginLimiter } from '../auth/login-limiter.js'
import { RoleAuthorizer } from '../auth/role-authorizer.js'
import { TokenCodec } from '../auth/tokens.js'
import { DockerTokenService } from '../auth/token-service.js'
import { UserStore } from '../auth/users.js'

export interface Auth {
  authenticator: Authenticator
  authorizer: Authorizer
  tokenService: TokenService
  /** Re-reads the htpasswd and token key files now (as a change to them does). */
  reload(): Promise<void>
  /** Swaps in the role bindings and anonymous-pull patterns of a re-read config. */
  applyPolicy(config: AuthConfig): void
  /** Stops watching files. */
  close(): void
}

export async function buildAuth(config: AuthConfig, logger: Logger, metrics?: Metrics, now?: () => number): Promise<Auth> {
  const log = logger.child({ component: 'auth' })
  const users = await UserStore.open({
    htpasswd: config.htpasswd,
    inline: config.users,
    logger: log,
    onReload: (outcome) => metrics?.credentialReloads.inc({ file: 'htpasswd', outcome }),
  })
  const ring = await KeyRing.open({
    file: config.token.key,
    // A replaced key verifies for as long as any token it signed can live.
    overlapMs: Math.max(config.token.ttl, config.token.refreshTtl),
    logger: log,
    onReload: (outcome) => metrics?.credentialReloads.inc({ file: 'token_key', outcome }),
  })
  const codec = new TokenCodec(ring, {
    issuer: config.token.issuer,
    service: config.token.service,
    ttlMs: config.token.ttl,
    refreshTtlMs: config.token.refreshTtl,
    ...(now ? { now } : {}),
  })
  const limiter = new LoginLimiter({ max: config.failedLogins.max, windowMs: config.failedLogins.window })
  const authorizer = new RoleAuthorizer(config)
  const audit = auditLogger(logger)
  const onFailedLogin = () => metrics?.failedLogins.inc()
  const authenticator = new CredentialAuthenticator({
    users,
    limiter,
    codec,
    audit,
    challenge: { service: config.token.service, realm: config.token.realm },
    onFailedLogin,
  })
  const tokenService = new DockerTokenService({
    service: config.token.service,
    users,
    limiter,
    codec,
    authorizer,
    audit,
    onFailedLogin,
    onIssued: () => metrics?.tokensIssued.inc(),
  })
  if (users.size === 0)
    log.info('no accounts configured: the registry is read-only (anonymous pull per auth.anonymousPull and auth.anonymousMirrorPull)')
  else log.info({ accounts: users.size, htpasswd: config.htpasswd, keyId: ring.signing.kid }, 'authentication ready')
  return {
    authenticator,
    authorizer,
    tokenService,
    async reload() {
      await users.reload()
      await ring.reload()
    },
    applyPolicy(next) {
      authorizer.update(next)
      log.info(
        { bindings: next.roles.length, anonymousPull: next.anonymousPull, anonymousMirrorPull: next.anonymousMirrorPull },
        'role bindings reloaded',
      )
    },
    close() {
      users.close()
      ring.close()
    },
  }
}
