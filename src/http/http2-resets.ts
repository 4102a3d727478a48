// Over HTTP/2, fastify ends a response whose body stream failed midway (a blob read or an
// upstream fill that broke) with `res.destroy()`, which resets the stream with NO_ERROR: a client
// may then take the short body for a whole one (Node's own HTTP/2 client reports a clean end).
// Giving destroy() an error makes the reset INTERNAL_ERROR, which every client treats as a failed
// response. node:http2's compatibility layer does not re-emit stream errors, so nothing throws.
import type { Http2ServerResponse } from 'node:http2'
import type { FastifyInstance } from 'fastify'

export function resetHttp2StreamsWithError(app: FastifyInstance): void {
  app.addHook('onRequest', async (request, reply) => {
    if (request.raw.httpVersionMajor !== 2) return
    const response = reply.raw as unknown as Http2ServerResponse
    const destroy = response.destroy.bind(response)
    response.destroy = (err?: Error) => destroy(err ?? new Error('response cut short'))
  })
}
