// The token endpoint of the Docker token protocol, the realm our challenges advertise:
// - GET /token?service=&scope=repository:<name>:pull,push[&scope=…][&offline_token=true], with
//   Basic credentials or none (an anonymous token), as docker, skopeo and containerd send it;
// - POST /token, an OAuth2 form: grant_type=password (username, password) or
//   grant_type=refresh_token (refresh_token), scope space-separated, access_type=offline for a
//   refresh token; containerd tries this first when it has credentials.
// Answers {token, access_token, expires_in, issued_at, refresh_token?}. Nothing here is logged
// beyond the request line: bodies and headers carry secrets.
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { TokenGrant, TokenRequest, TokenResult, TokenService } from '../core/auth.js'
import { RegistryError } from '../core/errors.js'
import { handleError } from './error-handler.js'

export interface TokenRoutesDeps {
  tokenService: TokenService
  service: string
}

// A token form is a few short fields; anything larger is not one.
const formLimit = 16 * 1024

export async function tokenRoutes(app: FastifyInstance, deps: TokenRoutesDeps): Promise<void> {
  app.setErrorHandler(handleError)
  // Only forms are read (415 for anything else), and only small ones (413).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: formLimit }, (_request, body, done) => {
    done(null, new URLSearchParams(body as string))
  })

  app.get('/token', async (request, reply) => {
    const query = new URL(request.url, 'http://x').searchParams
    const grant = basicGrant(request.headers.authorization)
    if (grant === undefined) throw unauthorized(deps.service, 'unsupported authorization for the token endpoint: use Basic')
    const result = await deps.tokenService.issue({
      grant,
      service: query.get('service') ?? undefined,
      scopes: query.getAll('scope').flatMap(splitScopes),
      offline: query.get('offline_token') === 'true',
      remote: request.ip,
    })
    sendResult(reply, result, deps.service, 'docker')
  })

  app.post('/token', async (request, reply) => {
    const form = request.body instanceof URLSearchParams ? request.body : undefined
    if (!form) return sendOAuthError(reply, 400, 'invalid_request', 'expected an application/x-www-form-urlencoded body')
    const grantType = form.get('grant_type')
    let grant: TokenGrant
    if (grantType === 'password') {
      const username = form.get('username')
      const password = form.get('password')
      if (!username || password === null) return sendOAuthError(reply, 400, 'invalid_request', 'username and password are required')
      grant = { type: 'password', username, password }
    } else if (grantType === 'refresh_token') {
      const refreshToken = form.get('refresh_token')
      if (!refreshToken) return sendOAuthError(reply, 400, 'invalid_request', 'refresh_token is required')
      grant = { type: 'refresh_token', refreshToken }
    } else {
      return sendOAuthError(reply, 400, 'unsupported_grant_type', 'grant_type must be password or refresh_token')
    }
    const tokenRequest: TokenRequest = {
      grant,
      service: form.get('service') ?? undefined,
      scopes: form.getAll('scope').flatMap(splitScopes),
      offline: form.get('access_type') === 'offline',
      remote: request.ip,
    }
    sendResult(reply, await deps.tokenService.issue(tokenRequest), deps.service, 'oauth')
  })
}

// Scopes are repeated parameters (docker) or one space-separated list (OAuth2, some clients).
function splitScopes(value: string): string[] {
  return value.split(' ').filter((s) => s !== '')
}

function basicGrant(authorization: string | undefined): TokenGrant | undefined {
  if (authorization === undefined || authorization.trim() === '') return { type: 'anonymous' }
  const match = /^basic\s+(\S+)\s*$/i.exec(authorization)
  if (!match) return undefined
  const text = Buffer.from(match[1] ?? '', 'base64').toString('utf8')
  const colon = text.indexOf(':')
  // A malformed pair is a failed login (counted), not a request error; no account has an empty name.
  return colon <= 0
    ? { type: 'password', username: '', password: '' }
    : { type: 'password', username: text.slice(0, colon), password: text.slice(colon + 1) }
}

function sendResult(reply: FastifyReply, result: TokenResult, service: string, form: 'docker' | 'oauth'): void {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
  switch (result.outcome) {
    case 'ok':
      reply.code(200).send(result.response)
      return
    case 'rate-limited':
      throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins from this address', undefined, {
        headers: { 'retry-after': String(result.retryAfterSeconds) },
      })
    case 'invalid-grant':
      if (form === 'oauth') return sendOAuthError(reply, 400, 'invalid_grant', result.reason)
      throw unauthorized(service, result.reason)
    case 'invalid-request':
      if (form === 'oauth') return sendOAuthError(reply, 400, 'invalid_request', result.reason)
      throw new RegistryError('UNSUPPORTED', result.reason, undefined, { status: 400 })
  }
}

function unauthorized(service: string, reason: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', reason, undefined, {
    headers: { 'www-authenticate': `Basic realm="${service.replace(/["\\\r\n]/g, '')}"` },
  })
}

function sendOAuthError(reply: FastifyReply, status: number, error: string, description: string): void {
  reply.code(status).header('cache-control', 'no-store').send({ error, error_description: description })
}
