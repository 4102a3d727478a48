import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RepositoryName } from '../core/reference.js'
import type { Op, Registry, Repository } from '../core/registry.js'
import type { BlobSender } from '../transfer/blob-sender.js'

export interface RegistryRouteOptions {
  /** Whether DELETE of manifests, tags and blobs is allowed (405 UNSUPPORTED otherwise). */
  deleteEnabled: boolean
}

/** What every OCI handler gets: the registry, the options, and this request's reply and Op. */
export interface HandlerContext {
  registry: Registry
  options: RegistryRouteOptions
  /** Sends blob bodies the fastest way the body and the connection allow. */
  sender: BlobSender
  request: FastifyRequest
  reply: FastifyReply
  op: Op
  /** The repository the request names, routed with this request's Op (e.g. containerd's ?ns=). */
  repository(name: RepositoryName): Repository
  query: Record<string, string | undefined>
}
