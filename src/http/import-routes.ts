// Server-side bulk imports:
//   POST   /ferry/v1/imports?namespace=<ns>[&digest=sha256:…]   a bundle as the body, or {"source":"s3://bucket/key"}
//   GET    /ferry/v1/imports                                     the imports the caller may see, newest first
//   GET    /ferry/v1/imports/<id>                                state, bytes, images done/total, per-image errors
//   DELETE /ferry/v1/imports/<id>                                cancels a running import
// Only an account with push on the namespace (an editor, or an admin) may start or see one: the
// right is checked on the namespace's staging repository, and again on each image's repository
// before it is written. Errors are the OCI error model's, as everywhere.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Authenticator, Authorizer, Need, Principal } from '../core/auth.js'
import { tryParseDigest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import { bundleStagingRepository, type ImportService, type ImportStatus } from '../core/imports.js'
import { isRepositoryName } from '../core/reference.js'
import { admit } from './access.js'
import { handleError } from './error-handler.js'
import { declaredLength, readBoundedBody } from './request-io.js'

export interface ImportRoutesDeps {
  imports: ImportService
  authenticator: Authenticator
  authorizer: Authorizer
}

const base = '/ferry/v1/imports'
const maxJsonBody = 64 * 1024

export async function importRoutes(app: FastifyInstance, deps: ImportRoutesDeps): Promise<void> {
  // Bundles stream straight from the socket into the reader: nothing is parsed up front.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))
  app.setErrorHandler(handleError)

  const needFor = (namespace: string): Need => ({ type: 'repository', name: `${namespace}/${bundleStagingRepository}`, action: 'push' })
  const mayManage = (principal: Principal, status: ImportStatus): boolean =>
    deps.authorizer.authorize(principal, needFor(status.namespace)) === 'allow'

  app.post(base, async (request, reply) => {
    const query = request.query as Record<string, string | string[] | undefined>
    const namespace = first(query.namespace)
    if (namespace === undefined || !isRepositoryName(namespace)) {
      request.raw.resume()
      throw new RegistryError('NAME_INVALID', 'the namespace query parameter must name a namespace (lowercase path components)')
    }
    const principal = await admit(deps, request, [needFor(namespace)])
    const mayPush = (repository: string): boolean =>
      deps.authorizer.authorize(principal, { type: 'repository', name: repository, action: 'push' }) === 'allow'
    const isJson = /^application\/json\b/i.test(request.headers['content-type'] ?? '')
    const clientGone = new AbortController()
    request.raw.once('close', () => {
      if (!request.raw.complete) clientGone.abort()
    })
    let source: Parameters<ImportService['start']>[0]['source']
    if (isJson) {
      source = { kind: 's3', url: s3Source(await readBoundedBody(request.raw, maxJsonBody, 'SIZE_INVALID')) }
    } else {
      const digestParam = first(query.digest)
      const digest = digestParam === undefined ? undefined : tryParseDigest(digestParam)
      if (digestParam !== undefined && (digest === undefined || !digest.startsWith('sha256:'))) {
        request.raw.resume()
        throw new RegistryError('DIGEST_INVALID', 'digest must be the sha256 of the bundle, sha256:<64 hex>')
      }
      source = { kind: 'body', stream: request.raw, length: declaredLength(request.raw), digest }
    }
    const started = await deps.imports.start({
      namespace,
      source,
      user: principal.name,
      mayPush,
      signal: clientGone.signal,
    })
    // What is left of a body nobody reads (a duplicate, a bundle that broke early) is not waited for.
    if (!request.raw.complete) reply.header('connection', 'close')
    return reply
      .code(started.existing ? 200 : 202)
      .header('location', `${base}/${started.status.id}`)
      .send(started.status)
  })

  app.get(base, async (request, reply) => {
    // Anonymous callers get the challenge when accounts exist; with none, nobody may push, so nothing is listed.
    const principal = await admit(deps, request, [])
    const visible = (await deps.imports.list()).filter((status) => mayManage(principal, status))
    return reply.send({ imports: visible })
  })

  const one = async (request: FastifyRequest, reply: FastifyReply, cancel: boolean): Promise<FastifyReply> => {
    const { id } = request.params as { id: string }
    const found = await deps.imports.get(id)
    await admit(deps, request, found ? [needFor(found.namespace)] : [])
    if (found === undefined) throw new RegistryError('NAME_UNKNOWN', 'import unknown', { id: id.slice(0, 100) })
    const status = cancel ? await deps.imports.cancel(id) : found
    return reply.send(status)
  }
  app.get(`${base}/:id`, (request, reply) => one(request, reply, false))
  app.delete(`${base}/:id`, (request, reply) => one(request, reply, true))
}

function s3Source(body: Buffer): string {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new RegistryError('UNSUPPORTED', 'the body must be JSON: {"source":"s3://bucket/key"}', undefined, { status: 400 })
  }
  const source = (parsed as { source?: unknown } | null)?.source
  if (typeof source !== 'string' || !source.startsWith('s3://')) {
    throw new RegistryError('UNSUPPORTED', 'source must be "s3://bucket/key"', undefined, { status: 400 })
  }
  return source
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
