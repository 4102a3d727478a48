// Who is asking and what they may do: the contracts between the HTTP layer and the auth
// implementations (src/auth), and the policy vocabulary (roles, bindings) the config is written
// in. Types, and the list of role names; the HTTP layer sees nothing else of auth.

/** What a request does to a repository. Catalog listing is a registry-wide right of its own. */
export type Action = 'pull' | 'push' | 'delete'

/** viewer: pull; editor: pull and push; admin: pull, push and delete (and the catalog when bound on "**"). */
export const roleNames = ['viewer', 'editor', 'admin'] as const
export type RoleName = (typeof roleNames)[number]

/** Gives `role` on repositories matching `namespaces` to `subjects` (user names, `group:<name>`, `anonymous`). */
export interface RoleBinding {
  subjects: string[]
  /** Patterns of "/"-separated components: "*" one component (or part of one), "**" any number. */
  namespaces: string[]
  role: RoleName
}

/** What the authorizer applies; replaced whole when the config is reloaded. */
export interface AccessPolicy {
  /** No binding at all makes every account an admin on "**". */
  roles: RoleBinding[]
  /** Patterns of pushed repositories anonymous clients may pull. Anonymous push and delete are never allowed. */
  anonymousPull: string[]
  /** Patterns over `<upstream>/<repository>` that anyone may pull from the mirror (content not pushed here). */
  anonymousMirrorPull: string[]
}

/**
 * A right as the Docker token protocol writes it: `repository:<name>:pull,push`, or
 * `registry:catalog:*` for listing the catalog.
 */
export interface Access {
  type: 'repository' | 'registry'
  name: string
  actions: string[]
}

export interface Principal {
  /** The account name; `""` for an anonymous principal. */
  name: string
  /** Groups the account belongs to, as role bindings name them (`group:<name>`). */
  groups: readonly string[]
  anonymous: boolean
  /**
   * Present when the principal was established by a bearer token: the most the request may do,
   * whatever the principal's roles. Absent for Basic credentials and for no credentials.
   */
  access?: readonly Access[]
  /** How the principal was established, for audit lines. */
  via: 'none' | 'basic' | 'bearer'
}

/** What authentication reads from a request. */
export interface Credentials {
  /** The Authorization header, if any. Never logged. */
  authorization: string | undefined
  /** The client's address, for failed-login rate limiting and audit lines. */
  remote: string
  /**
   * The connection the request came on (an opaque key): credentials verified on it are
   * remembered for its next requests, which skip the check while they send the same header.
   */
  connection?: object | undefined
}

export type Authentication =
  | { outcome: 'ok'; principal: Principal }
  /** Wrong password, unknown user, a bad, expired or revoked token, or an unknown scheme: 401. */
  | { outcome: 'invalid'; reason: string }
  /** Too many failed logins from this client: 429 with Retry-After; the credentials were not checked. */
  | { outcome: 'rate-limited'; retryAfterSeconds: number }

export interface Authenticator {
  /** Never throws for bad input: every failure is an outcome. A request without credentials is anonymous. */
  authenticate(credentials: Credentials): Promise<Authentication>
  /**
   * Whether any account exists. Without one nobody can log in, the registry is read-only, and
   * `/v2/` answers anonymous clients 200 instead of a challenge.
   */
  hasAccounts(): boolean
  /** What 401 challenges name: the token service, and its realm when configured (else derived from the request). */
  readonly challenge: { service: string; realm?: string | undefined }
}

/**
 * One right a request needs. `name` is the repository the request reaches (for a mirror, the
 * local name its route maps to: `/v2/pause?ns=docker.io` is `docker.io/pause`); roles are checked
 * on it. `requested` is the name as the path wrote it, when different: clients that compute their
 * own token scopes use that one, so a token for either covers the request. `mirrored` is set on a
 * pull the mirror answers from its upstream (the repository was never pushed here): the
 * upstream-qualified name (`gcr.io/pause`) that `auth.anonymousMirrorPull` patterns match.
 */
export type Need =
  | { type: 'repository'; name: string; action: Action; requested?: string; mirrored?: string }
  | { type: 'registry'; name: 'catalog'; action: '*' }

/**
 * - `allow`: go ahead.
 * - `deny`: the principal's roles do not allow it (403 for an account, 401 for anonymous).
 * - `insufficient-scope`: the roles would allow it but the bearer token does not carry the right
 *   (401, so the client fetches a token with the scope).
 */
export type Decision = 'allow' | 'deny' | 'insufficient-scope'

export interface Authorizer {
  /**
   * Live policy: role bindings as they are now, anonymous pull patterns, the token's scope. Never
   * allows anonymous push, delete or catalog, whatever the configuration.
   */
  authorize(principal: Principal, need: Need): Decision
}

/** How a token request authenticates (the Docker token protocol's GET, or the OAuth2 POST form). */
export type TokenGrant =
  { type: 'anonymous' } | { type: 'password'; username: string; password: string } | { type: 'refresh_token'; refreshToken: string }

export interface TokenRequest {
  grant: TokenGrant
  /** The `service` parameter; when given it must be ours. */
  service: string | undefined
  /** Requested scopes, `repository:<name>:<actions>` or `registry:catalog:*`. */
  scopes: string[]
  /** `offline_token=true` (GET) or `access_type=offline` (POST): also issue a refresh token. */
  offline: boolean
  remote: string
}

/** The token endpoint's JSON answer; `token` and `access_token` are the same token. */
export interface TokenResponse {
  token: string
  access_token: string
  expires_in: number
  issued_at: string
  refresh_token?: string
}

export type TokenResult =
  | { outcome: 'ok'; response: TokenResponse }
  /** Bad password or refresh token (401 on GET, 400 `invalid_grant` on POST). */
  | { outcome: 'invalid-grant'; reason: string }
  /** A malformed request or another service's name (400 `invalid_request`). */
  | { outcome: 'invalid-request'; reason: string }
  | { outcome: 'rate-limited'; retryAfterSeconds: number }

export interface TokenService {
  /** Grants the requested scopes intersected with what the principal may do now. Never throws for bad input. */
  issue(request: TokenRequest): Promise<TokenResult>
}
