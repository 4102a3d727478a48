// One log line and one set of metric samples per request, written when the response is done.
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../observability/metrics.js'

export function observeRequests(app: FastifyInstance, metrics: Metrics): void {
  // Socket counters are cumulative over keep-alive requests, so each request is measured from
  // where the previous response on its socket ended (0 for the first). Sampling at onRequest
  // instead would miss the request head and, for small uploads, the whole body: both are
  // already read by then.
  const baselines = new WeakMap<Socket, { read: number; written: number }>()
  app.addHook('onResponse', async (request, reply) => {
    const route = request.ociRoute ?? request.routeOptions.url ?? 'unmatched'
    const socket = request.raw.socket
    const now = { read: socket?.bytesRead ?? 0, written: socket?.bytesWritten ?? 0 }
    const start = (socket && baselines.get(socket)) ?? { read: 0, written: 0 }
    if (socket) baselines.set(socket, now)
    const received = now.read - start.read
    const sent = now.written - start.written
    const seconds = reply.elapsedTime / 1000
    const status = String(reply.statusCode)
    metrics.httpRequests.inc({ route, method: request.method, status })
    metrics.httpDuration.observe({ route, method: request.method }, seconds)
    metrics.bytesSent.inc({ route }, Math.max(0, sent))
    metrics.bytesReceived.inc({ route }, Math.max(0, received))
    request.log.info(
      {
        method: request.method,
        route,
        repo: request.ociRepository,
        status: reply.statusCode,
        bytesSent: sent,
        bytesReceived: received,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        remote: request.ip,
      },
      'request',
    )
  })
}
