// buildApp(deps) → a fastify instance that never listens: main.ts (or a test) decides where.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Registry } from '../core/registry.js'
import type { Metrics } from '../observability/metrics.js'
import { handleError } from './error-handler.js'
import type { RegistryRouteOptions } from './handler-context.js'
import { opsRoutes } from './ops-routes.js'
import { registryRoutes } from './registry-routes.js'
import { observeRequests } from './request-observer.js'

export interface AppDeps {
  registry: Registry
  logger: FastifyBaseLogger
  metrics: Metrics
  options?: Partial<RegistryRouteOptions>
  /** Readiness probe: storage reachable and not shutting down. */
  ready?: () => Promise<boolean>
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    // One line per request, written by observeRequests, instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false, // an implicit HEAD would run the GET handler and open whole blobs
    requestTimeout: 0, // a multi-GiB upload may take as long as it takes; idle sockets time out instead
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 4096 },
    // A malformed URL (bad percent-encoding) is refused by the router before any route runs:
    // answer it in the OCI error format too, not fastify's own.
    frameworkErrors: handleError,
  })
  observeRequests(app, deps.metrics)
  app.setErrorHandler(handleError)
  app.setNotFoundHandler((request, reply) => {
    handleError(Object.assign(new Error('not found'), { statusCode: 404 }), request, reply)
  })
  await app.register(opsRoutes, { metrics: deps.metrics, ready: deps.ready ?? (async () => true) })
  await app.register(registryRoutes, {
    registry: deps.registry,
    options: { deleteEnabled: deps.options?.deleteEnabled ?? true },
  })
  return app
}
