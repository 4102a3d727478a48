// The peer endpoint: a replica holding a fill lease streams that fill to the other replicas as
// it grows, so the upstream is asked once. It is not an open door: it answers only a caller
// presenting the lease's current token, a 128-bit random value that only readers of the lease
// store see, and only while the lease is held. The last byte leaves once the digest matched.
import { timingSafeEqual } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { FillCoordinator } from '../core/fill-lease.js'
import type { ByteRange } from '../core/range.js'
import { blobSizeHeader, peerFillsPath } from './peer-client.js'

/** A fill in this process, as the peer endpoint streams it. */
export interface PeerServedFill {
  readonly ready: Promise<number>
  follow(range?: ByteRange): Readable
}

export interface PeerRoutesDeps {
  coordinator: FillCoordinator
  /** The fill running here under `key`, if any. */
  fill(key: string): PeerServedFill | undefined
}

export async function peerRoutes(app: FastifyInstance, deps: PeerRoutesDeps): Promise<void> {
  app.get<{ Querystring: { key?: string; start?: string } }>(peerFillsPath, async (request, reply) => {
    const key = request.query.key ?? ''
    const start = Number(request.query.start ?? '0')
    const presented = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1] ?? ''
    const token = deps.coordinator.heldToken(key)
    const fill = deps.fill(key)
    // One answer for "no such lease", "wrong token" and "no fill": a prober learns nothing.
    if (token === undefined || !sameToken(presented, token) || !fill || !Number.isSafeInteger(start) || start < 0) {
      return reply.code(404).send({ errors: [{ code: 'NOT_FOUND', message: 'no such fill here' }] })
    }
    const size = await fill.ready
    if (start > size) return reply.code(416).send({ errors: [{ code: 'RANGE_INVALID', message: 'start beyond the blob' }] })
    const stream = start === size ? null : fill.follow({ start, end: size - 1 })
    reply
      .header(blobSizeHeader, String(size))
      .header('content-length', String(size - start))
      .header('content-type', 'application/octet-stream')
    return reply.send(stream ?? '')
  })
}

function sameToken(presented: string, token: string): boolean {
  const a = Buffer.from(presented)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}
