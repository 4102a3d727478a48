// The read-only status page: `/ui/` (one self-contained HTML file, no build step, nothing
// downloaded) and the JSON it reads under `/ui/api/`. Everything lives under /ui/ so a browser that
// logged in with Basic credentials on the page sends them with the page's own requests. When
// accounts exist the page wants a login, as the API does; repositories are listed only where the
// principal may pull.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Authenticator, Authorizer, Principal } from '../core/auth.js'
import { RegistryError } from '../core/errors.js'
import { parsePage } from '../core/pagination.js'
import { isRepositoryName } from '../core/reference.js'
import type { Registry } from '../core/registry.js'
import type { Metrics } from '../observability/metrics.js'
import { statusReport, type StatusFacts } from '../observability/status-report.js'
import { statusPage } from './status-page.js'

export interface StatusRoutesDeps {
  registry: Registry
  metrics: Metrics
  facts: StatusFacts
  authenticator: Authenticator
  authorizer: Authorizer
}

/** How many catalog entries one repositories request may look at, allowed or not. */
const catalogScanLimit = 10_000

export async function statusRoutes(app: FastifyInstance, deps: StatusRoutesDeps): Promise<void> {
  const admitted = async (request: FastifyRequest): Promise<Principal> => {
    const result = await deps.authenticator.authenticate({ authorization: request.headers.authorization, remote: request.ip })
    if (result.outcome === 'rate-limited') {
      throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins from this address', undefined, {
        headers: { 'retry-after': String(result.retryAfterSeconds) },
      })
    }
    if (result.outcome === 'ok' && !(result.principal.anonymous && deps.authenticator.hasAccounts())) return result.principal
    // Basic, not the API's Bearer challenge: a browser can answer this one with its login dialog.
    throw new RegistryError('UNAUTHORIZED', 'log in to see the status page', undefined, {
      headers: { 'www-authenticate': 'Basic realm="Ferry", charset="UTF-8"' },
    })
  }
  const mayPull = (principal: Principal, name: string) =>
    deps.authorizer.authorize(principal, { type: 'repository', name, action: 'pull' }) === 'allow'

  app.get('/', async (_request, reply) => reply.redirect('/ui/'))
  app.get('/ui', async (_request, reply) => reply.redirect('/ui/'))
  app.get('/ui/', async (request, reply) => {
    await admitted(request)
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
      .send(statusPage)
  })
  app.get('/ui/api/status', async (request, reply) => {
    await admitted(request)
    return reply.header('cache-control', 'no-store').send(await statusReport(deps.metrics, deps.facts))
  })
  // Pushed repositories the principal may pull, a page at a time (`n`, `last` as in /v2/_catalog).
  app.get('/ui/api/repositories', async (request, reply) => {
    const principal = await admitted(request)
    const page = parsePage(request.query as { n?: string; last?: string })
    const wanted = page.n ?? 100
    const repositories: string[] = []
    let last = page.last
    let scanned = 0
    let more = true
    while (more && repositories.length < wanted && scanned < catalogScanLimit) {
      const result = await deps.registry.catalog({ n: 1000, ...(last === undefined ? {} : { last }) })
      scanned += result.items.length
      for (const name of result.items) {
        if (repositories.length < wanted && mayPull(principal, name)) repositories.push(name)
      }
      last = result.items.at(-1)
      more = result.next !== undefined
    }
    // Where the next page starts: after the last one shown, or after the last one looked at.
    const next = repositories.length === wanted ? repositories.at(-1) : more ? last : undefined
    return reply.header('cache-control', 'no-store').send({ repositories, ...(next === undefined ? {} : { next }) })
  })
  app.get('/ui/api/tags', async (request, reply) => {
    const principal = await admitted(request)
    const name = (request.query as { repository?: unknown }).repository
    if (typeof name !== 'string' || !isRepositoryName(name)) throw new RegistryError('NAME_INVALID', 'give ?repository=<name>')
    // Not pullable and not there look the same, as on the API.
    if (!mayPull(principal, name)) throw new RegistryError('NAME_UNKNOWN', undefined, { name })
    const result = await deps.registry.repository(name).tags.list({ n: 1000 })
    if (!result) throw new RegistryError('NAME_UNKNOWN', undefined, { name })
    return reply.header('cache-control', 'no-store').send({ name, tags: result.items, truncated: result.next !== undefined })
  })
}
