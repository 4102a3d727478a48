// One log line and one set of metric samples per request, written when the response is done.
import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../observability/metrics.js'

declare module 'fastify' {
  interface FastifyRequest {
    socketBytesAtStart?: { read: number; written: number }
  }
}

export function observeRequests(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onRequest', async (request) => {
    const socket = request.raw.socket
    // Socket counters include headers and are shared by keep-alive requests, hence the deltas.
    request.socketBytesAtStart = { read: socket?.bytesRead ?? 0, written: socket?.bytesWritten ?? 0 }
  })
  app.addHook('onResponse', async (request, reply) => {
    const route = request.ociRoute ?? request.routeOptions.url ?? 'unmatched'
    const socket = request.raw.socket
    const start = request.socketBytesAtStart
    const received = socket && start ? socket.bytesRead - start.read : 0
    const sent = socket && start ? socket.bytesWritten - start.written : 0
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
