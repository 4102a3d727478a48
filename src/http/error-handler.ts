// The single place where errors become responses: RegistryError → its status and OCI body;
// fastify's own client errors keep their 4xx status; anything else is 500 UNKNOWN, logged once,
// with no stack trace or internal message reaching the client.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { RegistryError, isRegistryError } from '../core/errors.js'

export function toRegistryError(err: unknown): RegistryError {
  if (isRegistryError(err)) return err
  const fastifyError = err as Partial<FastifyError>
  const status = fastifyError.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new RegistryError('SIZE_INVALID', 'request body too large', undefined, { status })
    if (status === 415) return new RegistryError('UNSUPPORTED', 'unsupported media type', undefined, { status })
    return new RegistryError('UNSUPPORTED', fastifyError.message ?? 'bad request', undefined, { status })
  }
  return new RegistryError('UNKNOWN')
}

export function errorBody(err: RegistryError): string {
  return JSON.stringify({ errors: [err.toJSON()] })
}

export function handleError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const registryError = toRegistryError(err)
  if (registryError.code === 'UNKNOWN') request.log.error({ err }, 'request failed')
  if (reply.sent || reply.raw.headersSent) {
    // Headers are out (e.g. a blob stream failed midway): the only honest signal left is a cut connection.
    reply.raw.destroy()
    return
  }
  // Refused before its body fully arrived (a 413, a 416, an unknown upload): do not keep the
  // connection, or the client's next request would queue behind bytes nobody reads any more.
  // HTTP/2 has no such header (the stream ends alone, the session goes on).
  if (!request.raw.complete && request.raw.httpVersionMajor < 2) reply.header('connection', 'close')
  reply
    .code(registryError.status)
    .headers(registryError.headers)
    .header('content-type', 'application/json; charset=utf-8')
    .send(errorBody(registryError))
}
