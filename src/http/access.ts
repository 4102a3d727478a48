// Authentication and authorization of /v2 requests: which rights an endpoint needs, who is
// asking, and the answer when they may not: 401 UNAUTHORIZED with a Bearer challenge pointing at
// the token service (no credentials, bad credentials, anonymous, or a token lacking the scope),
// 403 DENIED (an account whose roles do not allow it), 429 TOOMANYREQUESTS (too many failed logins).
import type { Http2ServerRequest } from 'node:http2'
import type { FastifyRequest } from 'fastify'
import type { Action, Authenticator, Authorizer, Decision, Need, Principal } from '../core/auth.js'
import { RegistryError } from '../core/errors.js'
import type { OciEndpoint } from './oci-path.js'

export interface AccessDeps {
  authenticator: Authenticator
  authorizer: Authorizer
}

const methodActions: Record<string, Action> = { GET: 'pull', HEAD: 'pull', POST: 'push', PUT: 'push', PATCH: 'push', DELETE: 'delete' }

/**
 * The rights a request needs; empty for the base endpoint. Upload GET and DELETE are part of a
 * push. `localName` is the repository the path's route reaches (see Need).
 */
export function requiredNeeds(endpoint: OciEndpoint, method: string, localName?: string): Need[] {
  if (endpoint.kind === 'base') return []
  if (endpoint.kind === 'catalog') return [{ type: 'registry', name: 'catalog', action: '*' }]
  const action = endpoint.kind === 'upload' || endpoint.kind === 'upload-start' ? 'push' : (methodActions[method] ?? 'pull')
  const name = localName ?? endpoint.name
  return [name === endpoint.name ? { type: 'repository', name, action } : { type: 'repository', name, action, requested: endpoint.name }]
}

/**
 * Authenticates the request and checks `needs`; returns the principal or throws the
 * RegistryError to answer with. `/v2/` (no needs) wants valid credentials when some are sent,
 * and a login when accounts exist, so clients learn where to get a token before they push.
 */
export async function admit(
  deps: AccessDeps,
  request: FastifyRequest,
  needs: readonly Need[],
  mirrored?: () => Promise<string | undefined>,
): Promise<Principal> {
  const authorization = request.headers.authorization
  const connection = authorization === undefined ? undefined : connectionOf(request)
  const result = await deps.authenticator.authenticate({ authorization, remote: request.ip, connection })
  if (result.outcome === 'rate-limited') {
    throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins from this address', undefined, {
      headers: { 'retry-after': String(result.retryAfterSeconds) },
    })
  }
  if (result.outcome === 'invalid') throw unauthorized(deps, request, needs, undefined, result.reason)
  const principal = result.principal
  // Known before the rights are checked, so the audit line of a refused request names who was refused.
  request.principal = principal
  if (needs.length === 0 && principal.anonymous && principal.via === 'none' && deps.authenticator.hasAccounts()) {
    throw unauthorized(deps, request, needs)
  }
  for (const need of needs) {
    const decision = await decide(deps.authorizer, principal, need, mirrored)
    if (decision === 'allow') continue
    if (decision === 'insufficient-scope') throw unauthorized(deps, request, needs, 'insufficient_scope')
    // Anonymous: logging in may help, so challenge. An account: it would not, so refuse.
    if (principal.anonymous) throw unauthorized(deps, request, needs)
    throw new RegistryError('DENIED', undefined, describe(need))
  }
  return principal
}

// Whether a pull is answered from an upstream costs a storage lookup, so it is asked only when
// the principal's own rights do not already allow the pull.
async function decide(
  authorizer: Authorizer,
  principal: Principal,
  need: Need,
  mirrored?: () => Promise<string | undefined>,
): Promise<Decision> {
  const decision = authorizer.authorize(principal, need)
  if (decision === 'allow' || need.type !== 'repository' || need.action !== 'pull' || mirrored === undefined) return decision
  const upstreamName = await mirrored()
  return upstreamName === undefined ? decision : authorizer.authorize(principal, { ...need, mirrored: upstreamName })
}

/** The connection a request came on: its socket, or over HTTP/2 its session (streams come and go). */
function connectionOf(request: FastifyRequest): object | undefined {
  const raw = request.raw
  if (raw.httpVersionMajor !== 2) return raw.socket ?? undefined
  return (raw as unknown as Http2ServerRequest).stream?.session ?? undefined
}

function describe(need: Need): Record<string, string> {
  return need.type === 'registry' ? { scope: 'registry:catalog:*' } : { name: need.name, action: need.action }
}

function unauthorized(
  deps: AccessDeps,
  request: FastifyRequest,
  needs: readonly Need[],
  error?: 'insufficient_scope',
  reason?: string,
): RegistryError {
  return new RegistryError('UNAUTHORIZED', reason === undefined ? undefined : `authentication required: ${reason}`, undefined, {
    headers: { 'www-authenticate': challenge(deps.authenticator, request, needs, error) },
  })
}

/** `Bearer realm="…",service="…",scope="repository:<name>:<actions>"`, as docker and containerd expect. */
export function challenge(authenticator: Authenticator, request: FastifyRequest, needs: readonly Need[], error?: string): string {
  const params = [`realm="${realmOf(authenticator, request)}"`, `service="${quoted(authenticator.challenge.service)}"`]
  const scope = needs.map(scopeOf).join(' ')
  if (scope !== '') params.push(`scope="${scope}"`)
  if (error !== undefined) params.push(`error="${error}"`)
  return `Bearer ${params.join(',')}`
}

// Clients ask for what they will do next: a push also reads (HEAD blobs, GET manifests).
function scopeOf(need: Need): string {
  if (need.type === 'registry') return 'registry:catalog:*'
  const actions = need.action === 'push' ? 'pull,push' : need.action
  return `repository:${need.name}:${actions}`
}

/** The configured realm, else `<proto>://<host>/token` from the request (X-Forwarded-Proto honoured). */
export function realmOf(authenticator: Authenticator, request: FastifyRequest): string {
  if (authenticator.challenge.realm !== undefined) return quoted(authenticator.challenge.realm)
  const forwarded = String(request.headers['x-forwarded-proto'] ?? '')
    .split(',')[0]
    ?.trim()
    .toLowerCase()
  const proto = forwarded === 'https' || forwarded === 'http' ? forwarded : request.protocol
  // A Host that is no host[:port] would break the header's quoting: use the address we answered on.
  const host = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(request.host)
    ? request.host
    : `${bracketed(request.socket.localAddress ?? '127.0.0.1')}:${request.socket.localPort ?? ''}`
  return `${proto}://${host}/token`
}

function bracketed(address: string): string {
  return address.includes(':') ? `[${address}]` : address
}

function quoted(text: string): string {
  return text.replace(/["\\\r\n]/g, '')
}
