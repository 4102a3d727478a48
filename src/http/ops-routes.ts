import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../observability/metrics.js'

export interface OpsRoutesDeps {
  metrics: Metrics
  ready: () => Promise<boolean>
  /** A storage condition to report while ready (a full volume still serves pulls), else undefined. */
  storageProblem?: () => string | undefined
}

/** Liveness, readiness and Prometheus metrics: outside /v2, never authenticated. */
export async function opsRoutes(app: FastifyInstance, deps: OpsRoutesDeps): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    const ready = await deps.ready().catch(() => false)
    const storage = deps.storageProblem?.()
    const body = {
      status: ready ? (storage === undefined ? 'ready' : 'degraded') : 'unavailable',
      ...(storage === undefined ? {} : { storage }),
    }
    return reply.code(ready ? 200 : 503).send(body)
  })
  app.get('/metrics', async (_request, reply) => {
    return reply.header('content-type', deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics())
  })
}
