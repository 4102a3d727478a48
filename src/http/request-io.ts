// Small helpers for reading what a request carries: bounded bodies, lengths, Accept lists.
import type { IncomingMessage } from 'node:http'
import { RegistryError } from '../core/errors.js'

/** Reads a whole body of at most `limit` bytes; a larger one fails with 413 before it is all read. */
export async function readBoundedBody(request: IncomingMessage, limit: number, code: 'MANIFEST_INVALID' | 'SIZE_INVALID'): Promise<Buffer> {
  const declared = declaredLength(request)
  const tooLarge = () => new RegistryError(code, 'request body too large', { limit }, { status: 413 })
  if (declared !== undefined && declared > limit) {
    request.resume()
    throw tooLarge()
  }
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of request) {
    total += (chunk as Buffer).length
    if (total > limit) {
      request.resume()
      throw tooLarge()
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, total)
}

/** The Content-Length header as a number; undefined when absent. Throws on a malformed value. */
export function declaredLength(request: IncomingMessage): number | undefined {
  const header = request.headers['content-length']
  if (header === undefined) return undefined
  if (!/^\d+$/.test(header)) throw new RegistryError('SIZE_INVALID', 'invalid Content-Length', { contentLength: header })
  return Number(header)
}

/** Whether the request carries a body at all (a length above zero, or chunked encoding). */
export function hasBody(request: IncomingMessage): boolean {
  const length = declaredLength(request)
  return length !== undefined ? length > 0 : request.headers['transfer-encoding'] !== undefined
}

const noMediaTypes: readonly string[] = Object.freeze([])
/**
 * Parsed Accept headers. Clients send a handful of distinct ones (containerd's, docker's,
 * skopeo's) on every manifest request, so each is parsed once. Bounded: a client sending a new
 * header per request only empties it now and then.
 */
const parsedAccept = new Map<string, readonly string[]>()
const parsedAcceptLimit = 256
/**
 * The header parsed last: a node pulls with one client, so the next request usually sends the
 * same header, and comparing it is cheaper than hashing its ~200 characters for the map (#18).
 * Pure memoisation: two apps in one process may share it.
 */
const lastAccept: { header: string | undefined; types: readonly string[] } = { header: undefined, types: noMediaTypes }

/** Media types from (possibly repeated) Accept headers, parameters and q-values dropped. Shared: never mutate. */
export function acceptedMediaTypes(header: string | string[] | undefined): readonly string[] {
  if (header === undefined) return noMediaTypes
  if (Array.isArray(header)) return parseAccept(header.join(','))
  if (header === lastAccept.header) return lastAccept.types
  let types = parsedAccept.get(header)
  if (types === undefined) {
    if (parsedAccept.size >= parsedAcceptLimit) parsedAccept.clear()
    types = parseAccept(header)
    parsedAccept.set(header, types)
  }
  lastAccept.header = header
  lastAccept.types = types
  return types
}

function parseAccept(header: string): readonly string[] {
  const types = header
    .split(',')
    .map((item) => item.split(';', 1)[0]!.trim().toLowerCase())
    .filter((item) => item !== '')
  return Object.freeze(types)
}
