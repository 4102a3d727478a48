// Admin endpoints of the storage lifecycle: POST /ferry/v1/gc (`?dryRun=true` lists what would go)
// and POST /ferry/v1/scrub. Registry-wide work: only an admin on "**" (the catalog right) may ask.
import type { FastifyInstance } from 'fastify'
import type { Authenticator, Authorizer } from '../core/auth.js'
import { admit } from './access.js'

/** What the endpoints run; composition implements it with the storage lifecycle. */
export interface MaintenanceService {
  gc(dryRun: boolean): Promise<unknown>
  scrub(dryRun: boolean): Promise<unknown>
}

export interface MaintenanceRoutesDeps {
  maintenance: MaintenanceService
  authenticator: Authenticator
  authorizer: Authorizer
}

const registryAdmin = [{ type: 'registry', name: 'catalog', action: '*' }] as const

export async function maintenanceRoutes(app: FastifyInstance, deps: MaintenanceRoutesDeps): Promise<void> {
  const dryRunOf = (query: unknown): boolean => {
    const value = (query as Record<string, unknown> | undefined)?.dryRun
    return value === 'true' || value === '1'
  }
  app.post('/ferry/v1/gc', async (request, reply) => {
    await admit(deps, request, registryAdmin)
    return reply.send(await deps.maintenance.gc(dryRunOf(request.query)))
  })
  app.post('/ferry/v1/scrub', async (request, reply) => {
    await admit(deps, request, registryAdmin)
    return reply.send(await deps.maintenance.scrub(dryRunOf(request.query)))
  })
}
