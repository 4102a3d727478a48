// buildApp(deps) → a fastify instance that never listens: main.ts (or a test) decides where.
import type { Server } from 'node:http'
import type { SecureServerOptions } from 'node:http2'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance } from 'fastify'
import type { Authenticator, Authorizer, TokenService } from '../core/auth.js'
import type { ImportService } from '../core/imports.js'
import type { Registry } from '../core/registry.js'
import type { BlobSender } from '../transfer/blob-sender.js'
import type { Metrics } from '../observability/metrics.js'
import { handleError } from './error-handler.js'
import { lazyChildLoggerFactory } from './lazy-request-logger.js'
import { resetHttp2StreamsWithError } from './http2-resets.js'
import type { RegistryRouteOptions } from './handler-context.js'
import { maintenanceRoutes, type MaintenanceService } from './maintenance-routes.js'
import { opsRoutes } from './ops-routes.js'
import type { StatusFacts } from '../observability/status-report.js'
import { statusRoutes } from './status-routes.js'
import { importRoutes } from './import-routes.js'
import type { AccessTimeReader } from '../core/access-times.js'
import { harborRoutes } from './harbor/harbor-routes.js'
import { registryRoutes } from './registry-routes.js'
import { tokenRoutes } from './token-routes.js'
import { observeRequests } from './request-observer.js'

export interface AppDeps {
  registry: Registry
  logger: FastifyBaseLogger
  metrics: Metrics
  options?: Partial<RegistryRouteOptions>
  /** How blob bodies leave the process (sendfile, shared blocks); composition builds it. */
  blobSender: BlobSender
  /** Readiness probe: storage reachable and not shutting down. */
  ready?: () => Promise<boolean>
  /** A storage condition /readyz reports without failing (the volume is full), while it lasts. */
  storageProblem?: () => string | undefined
  /** GC and scrub on demand (admin endpoints under /ferry/v1/). */
  maintenance?: MaintenanceService
  /** Who is asking: every /v2 request is authenticated (Basic, or a Bearer token of ours). */
  authenticator: Authenticator
  /** What they may do: checked per endpoint and action before any handler runs. */
  authorizer: Authorizer
  /** Serves the token endpoint (GET and POST /token) that challenges point at. */
  tokenService?: TokenService
  /** Push and pull times of manifests and tags, for the Harbor-compatible listing API. */
  accessTimes?: AccessTimeReader
  /** What the status page (`/ui/`) shows beside the metrics; without it there is no status page. */
  status?: StatusFacts
  /** Server-side bulk imports (`/ferry/v1/imports`); absent: no such routes. */
  imports?: ImportService
  /** HTTPS (and HTTP/2) instead of plain HTTP/1.1; the caller reads the certificate files. */
  serverOptions?: AppServerOptions
}

/** The fastify server options that choose the protocol, passed through as given. */
export interface AppServerOptions {
  /** node:https or node:http2 secure server options: certificate, key, CA, TLS policy. */
  https: SecureServerOptions
  /** Serve HTTP/2 (ALPN h2), with HTTP/1.1 for other clients when `https.allowHTTP1`. */
  http2: boolean
  /** Milliseconds an idle HTTP/2 session is kept open. */
  http2SessionTimeout?: number
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    // One line per request, written by observeRequests, instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLoggerFactory,
    exposeHeadRoutes: false, // an implicit HEAD would run the GET handler and open whole blobs
    requestTimeout: 0, // a multi-GiB upload may take as long as it takes; idle sockets time out instead
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 4096 },
    // A malformed URL (bad percent-encoding) is refused by the router before any route runs:
    // answer it in the OCI error format too, not fastify's own.
    frameworkErrors: handleError,
    // Typed as the HTTP/1 server whatever it is: routes only use the request/response API that
    // node:http, node:https and node:http2's compatibility layer share.
    ...(deps.serverOptions as FastifyHttpOptions<Server> | undefined),
  })
  observeRequests(app, deps.metrics, (socket) => deps.blobSender.kernelSent(socket), deps.serverOptions?.http2 === true)
  if (deps.serverOptions?.http2) resetHttp2StreamsWithError(app)
  app.setErrorHandler(handleError)
  app.setNotFoundHandler((request, reply) => {
    handleError(Object.assign(new Error('not found'), { statusCode: 404 }), request, reply)
  })
  await app.register(opsRoutes, {
    metrics: deps.metrics,
    ready: deps.ready ?? (async () => true),
    ...(deps.storageProblem ? { storageProblem: deps.storageProblem } : {}),
  })
  if (deps.maintenance) {
    await app.register(maintenanceRoutes, { maintenance: deps.maintenance, authenticator: deps.authenticator, authorizer: deps.authorizer })
  }
  await app.register(registryRoutes, {
    registry: deps.registry,
    options: { deleteEnabled: deps.options?.deleteEnabled ?? true },
    sender: deps.blobSender,
    authenticator: deps.authenticator,
    authorizer: deps.authorizer,
  })
  if (deps.status) {
    await app.register(statusRoutes, {
      registry: deps.registry,
      metrics: deps.metrics,
      facts: deps.status,
      authenticator: deps.authenticator,
      authorizer: deps.authorizer,
    })
  }
  if (deps.imports) {
    await app.register(importRoutes, { imports: deps.imports, authenticator: deps.authenticator, authorizer: deps.authorizer })
  }
  await app.register(harborRoutes, {
    registry: deps.registry,
    authenticator: deps.authenticator,
    authorizer: deps.authorizer,
    ...(deps.accessTimes ? { times: deps.accessTimes } : {}),
  })
  if (deps.tokenService) {
    await app.register(tokenRoutes, { tokenService: deps.tokenService, service: deps.authenticator.challenge.service })
  }
  return app
}
