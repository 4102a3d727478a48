import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Op, Registry } from '../core/registry.js'

export interface RegistryRouteOptions {
  /** Whether DELETE of manifests, tags and blobs is allowed (405 UNSUPPORTED otherwise). */
  deleteEnabled: boolean
}

/** What every OCI handler gets: the registry, the options, and this request's reply and Op. */
export interface HandlerContext {
  registry: Registry
  options: RegistryRouteOptions
  request: FastifyRequest
  reply: FastifyReply
  op: Op
  query: Record<string, string | undefined>
}
