// The /v2 API as one fastify plugin: a single wildcard route whose path is parsed from the end
// (see oci-path.ts), then dispatched by endpoint and method. Bodies are left unread here so
// uploads stream straight into storage and manifests are read with a bound.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Action, Authenticator, Authorizer, Need, Principal } from '../core/auth.js'
import { RegistryError } from '../core/errors.js'
import type { Notice, Op, Registry, Repository } from '../core/registry.js'
import type { BlobSender } from '../transfer/blob-sender.js'
import { admit, requiredNeeds } from './access.js'
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
    /** Who is asking, once authenticated. */
    principal?: Principal
    /** What an audited request (a push or delete of content) did, for its audit line. */
    ociAudit?: { action: Action; tag?: string; digest?: string; always: boolean; repo?: string }
  }
}

type Handler = (ctx: HandlerContext, endpoint: never) => Promise<void>
type Dispatch = {
  [K in OciEndpointKind]: Partial<Record<string, (ctx: HandlerContext, e: Extract<OciEndpoint, { kind: K }>) => Promise<void>>>
}

const jsonType = 'application/json; charset=utf-8'
const emptyObject = Buffer.from('{}')
const noNeeds: readonly Need[] = Object.freeze([])

const dispatch: Dispatch = {
  // Answered by handle() itself (see answerBase); listed here for the 405's Allow header.
  base: { GET: async () => undefined, HEAD: async () => undefined },
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
  sender: BlobSender
  authenticator: Authenticator
  authorizer: Authorizer
}

export async function registryRoutes(app: FastifyInstance, deps: RegistryRoutesDeps): Promise<void> {
  // Leave every body as a stream: handlers decide how (and how much) to read.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))
  app.setErrorHandler(handleError)
  // A callback hook, not an async one: no promise per request for a line most requests skip.
  app.addHook('onResponse', (request, reply, done) => {
    auditLine(request, reply)
    done()
  })

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
    if (endpoint.kind === 'base') return answerBase(request, reply)
    const query = queryStart < 0 ? {} : firstValues(request.query as Record<string, string | string[] | undefined>)
    request.ociAudit = auditOf(endpoint, request.method, query)
    const op: Op = {
      accept: acceptedMediaTypes(request.headers.accept),
      notify: (notice) => reportNotice(request, reply, notice),
    }
    if (query.ns) op.ns = query.ns
    // Rights are on the repository the route reaches, which for a mirror may not be the path's
    // name (`/v2/pause?ns=docker.io` is `docker.io/pause`): the name pushed content lands under.
    // An `ns` no upstream answers to is refused there (NAME_UNKNOWN).
    const named = 'name' in endpoint ? { requested: endpoint.name, repository: deps.registry.repository(endpoint.name, op) } : undefined
    // The spec's echo of the registry a proxy served for: the canonical name of the upstream `ns`
    // selected, never the client's own bytes (they would reach a response header).
    const upstream = named?.repository.mirror?.upstream
    if (op.ns !== undefined && upstream !== undefined) reply.header('oci-namespace', upstream)
    const localName = named?.repository.name
    if (request.ociAudit && localName !== undefined) request.ociAudit.repo = localName
    const principal = await admit(deps, request, requiredNeeds(endpoint, request.method, localName), () => mirroredName(named?.repository))
    request.principal = principal
    // A cross-repository mount reads `from`: without pull there it is an ordinary upload (202),
    // as when `from` lacks the blob, so the answer says nothing about the other repository.
    if (endpoint.kind === 'upload-start' && query.mount !== undefined && query.from !== undefined) {
      if (deps.authorizer.authorize(principal, { type: 'repository', name: query.from, action: 'pull' }) !== 'allow') delete query.from
    }
    const ctx: HandlerContext = {
      registry: deps.registry,
      options: deps.options,
      sender: deps.sender,
      request,
      reply,
      query,
      op,
      // The named repository is reused: it remembers whether it was pushed (asked once per request).
      repository: (name) => (named !== undefined && name === named.requested ? named.repository : deps.registry.repository(name, op)),
    }
    await handler(ctx, endpoint as never)
    return reply
  }

  // `GET /v2/` is what clients probe before anything else, and what load balancers poll: it needs
  // no repository, query, audit or handler context, only the login check (#18).
  async function answerBase(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    request.principal = await admit(deps, request, noNeeds)
    // The same bytes and type fastify's serializer would give `{}`, without its serialization steps.
    return request.method === 'HEAD' ? reply.send() : reply.type(jsonType).send(emptyObject)
  }

  /** The upstream-qualified name when the mirror would answer a pull from its upstream. */
  async function mirroredName(repository: Repository | undefined): Promise<string | undefined> {
    const mirror = repository?.mirror
    if (mirror === undefined) return undefined
    return (await mirror.pushed()) ? undefined : mirror.upstreamName
  }

  // OPTIONS too, so it gets the 405 + Allow every other unsupported method gets, not a 404.
  app.route({ method: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'], url: '/v2/*', handler: handle })
  app.route({ method: ['GET', 'HEAD'], url: '/v2', handler: handle })
}

/**
 * Content-changing requests get an audit line: manifest PUT, blob commit (PUT of an upload, POST
 * with ?digest= or a mount) and DELETE of manifests, tags and blobs. Other parts of a push
 * (session start, PATCH) get one only when refused.
 */
function auditOf(endpoint: OciEndpoint, method: string, query: Record<string, string | undefined>): FastifyRequest['ociAudit'] {
  switch (endpoint.kind) {
    case 'manifest': {
      if (method !== 'PUT' && method !== 'DELETE') return undefined
      const reference = endpoint.reference.includes(':') ? { digest: endpoint.reference } : { tag: endpoint.reference }
      return { action: method === 'PUT' ? 'push' : 'delete', always: true, ...reference }
    }
    case 'blob':
      return method === 'DELETE' ? { action: 'delete', digest: endpoint.digest, always: true } : undefined
    case 'upload':
      return { action: 'push', always: method === 'PUT', ...(query.digest === undefined ? {} : { digest: query.digest }) }
    case 'upload-start': {
      const digest = query.mount ?? query.digest
      return { action: 'push', always: digest !== undefined, ...(digest === undefined ? {} : { digest }) }
    }
    default:
      return undefined
  }
}

function auditLine(request: FastifyRequest, reply: FastifyReply): void {
  const audit = request.ociAudit
  const status = reply.statusCode
  if (!audit || !(audit.always || status === 401 || status === 403 || status === 429)) return
  const principal = request.principal
  const digest = reply.getHeader('docker-content-digest') ?? audit.digest
  request.log.info(
    {
      audit: true,
      action: audit.action,
      // Refused before authentication finished: anonymous when no credentials came, else unknown.
      user: principal ? (principal.anonymous ? 'anonymous' : principal.name) : request.headers.authorization ? undefined : 'anonymous',
      via: principal?.via,
      repo: audit.repo ?? request.ociRepository,
      tag: audit.tag,
      digest: typeof digest === 'string' ? digest.slice(0, 200) : undefined,
      method: request.method,
      status,
      remote: request.ip,
    },
    audit.action,
  )
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
  // The reason names the upstream and the cause (unreachable, refused our credentials, denied access).
  const text = `served from cache: ${notice.reason}`
    .replace(/[^ -~]/g, '?')
    .replace(/["\\]/g, "'")
    .slice(0, 300)
  reply.header('warning', `299 - "${text}"`).header('x-ferry-cache', 'stale')
  request.log.warn({ upstream: notice.upstream, reason: notice.reason }, 'served stale')
}

/** Repeated query parameters count once: the first value wins. */
function firstValues(query: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const result: Record<string, string | undefined> = {}
  for (const [key, value] of Object.entries(query)) result[key] = Array.isArray(value) ? value[0] : value
  return result
}
