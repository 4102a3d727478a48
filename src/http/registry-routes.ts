// The /v2 API as one fastify plugin: a single wildcard route whose path is parsed from the end
// (see oci-path.ts), then dispatched by endpoint and method. Bodies are left unread here so
// uploads stream straight into storage and manifests are read with a bound.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { RegistryError } from '../core/errors.js'
import type { Notice, Op, Registry } from '../core/registry.js'
import { handleError } from './error-handler.js'
import type { HandlerContext, RegistryRouteOptions } from './handler-context.js'
import { deleteBlob, getBlob } from './handlers/blobs.js'
import { listCatalog, listReferrers, listTags } from './handlers/listings.js'
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.js'
import { deleteUpload, getUpload, patchUpload, putUpload, startUpload } from './handlers/uploads.js'
import { parseOciPath, throwNotFound, type OciEndpoint, type OciEndpointKind } from './oci-path.js'
import { acceptedMediaTypes } from './request-io.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The endpoint kind, the low-cardinality route label of logs and metrics. */
    ociRoute?: OciEndpointKind
    ociRepository?: string
  }
}

type Handler = (ctx: HandlerContext, endpoint: never) => Promise<void>
type Dispatch = { [K in OciEndpointKind]: Partial<Record<string, (ctx: HandlerContext, e: Extract<OciEndpoint, { kind: K }>) => Promise<void>>> }

const dispatch: Dispatch = {
  base: { GET: async (ctx) => void ctx.reply.send({}), HEAD: async (ctx) => void ctx.reply.send() },
  catalog: { GET: listCatalog },
  manifest: {
    GET: (ctx, e) => getManifest(ctx, e, false),
    HEAD: (ctx, e) => getManifest(ctx, e, true),
    PUT: putManifest,
    DELETE: deleteManifest,
  },
  blob: { GET: (ctx, e) => getBlob(ctx, e, false), HEAD: (ctx, e) => getBlob(ctx, e, true), DELETE: deleteBlob },
  'upload-start': { POST: startUpload },
  upload: { GET: getUpload, PATCH: patchUpload, PUT: putUpload, DELETE: deleteUpload },
  tags: { GET: listTags },
  referrers: { GET: listReferrers },
}

export interface RegistryRoutesDeps {
  registry: Registry
  options: RegistryRouteOptions
}

export async function registryRoutes(app: FastifyInstance, deps: RegistryRoutesDeps): Promise<void> {
  // Leave every body as a stream: handlers decide how (and how much) to read.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))
  app.setErrorHandler(handleError)

  const handle = async (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0')
    const url = request.url
    const queryStart = url.indexOf('?')
    const endpoint = parseOciPath(decodePath(url.slice('/v2/'.length, queryStart < 0 ? undefined : queryStart)))
    if (!endpoint) throwNotFound(url)
    request.ociRoute = endpoint.kind
    if ('name' in endpoint) request.ociRepository = endpoint.name
    const handler = (dispatch[endpoint.kind] as Record<string, Handler | undefined>)[request.method]
    if (!handler) {
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`, undefined, {
        status: 405,
        headers: { allow: Object.keys(dispatch[endpoint.kind]).join(', ') },
      })
    }
    const query = firstValues(request.query as Record<string, string | string[] | undefined>)
    const op: Op = {
      accept: acceptedMediaTypes(request.headers.accept),
      notify: (notice) => reportNotice(request, reply, notice),
    }
    if (query.ns) {
      op.ns = query.ns
      reply.header('oci-namespace', query.ns) // the spec's echo of the registry a proxy served for
    }
    const ctx: HandlerContext = {
      registry: deps.registry,
      options: deps.options,
      request,
      reply,
      query,
      op,
      repository: (name) => deps.registry.repository(name, op),
    }
    await handler(ctx, endpoint as never)
    return reply
  }

  // OPTIONS too, so it gets the 405 + Allow every other unsupported method gets, not a 404.
  app.route({ method: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'], url: '/v2/*', handler: handle })
  app.route({ method: ['GET', 'HEAD'], url: '/v2', handler: handle })
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path)
  } catch {
    throw new RegistryError('NAME_INVALID', 'malformed percent-encoding in path')
  }
}

/**
 * A stale answer says so three ways: a Warning header (the OCI spec allows `299` warnings), a
 * header naming the cache state, and a log line.
 */
function reportNotice(request: FastifyRequest, reply: FastifyReply, notice: Notice): void {
  if (reply.sent) return
  const text = `served from cache: upstream ${notice.upstream} unavailable`.replace(/"/g, "'")
  reply.header('warning', `299 - "${text}"`).header('x-ferry-cache', 'stale')
  request.log.warn({ upstream: notice.upstream, reason: notice.reason }, 'served stale')
}

/** Repeated query parameters count once: the first value wins. */
function firstValues(query: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const result: Record<string, string | undefined> = {}
  for (const [key, value] of Object.entries(query)) result[key] = Array.isArray(value) ? value[0] : value
  return result
}
