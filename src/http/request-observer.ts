// One log line and one set of metric samples per request, written when the response is done.
import type { Http2ServerRequest } from 'node:http2'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Metrics } from '../observability/metrics.js'

export function observeRequests(
  app: FastifyInstance,
  metrics: Metrics,
  /** Bytes the kernel sent on a socket with sendfile(2), which socket.bytesWritten never counts. */
  kernelSent: (socket: Socket) => number,
): void {
  // Socket counters are cumulative over keep-alive requests, so each request is measured from
  // where the previous response on its socket ended (0 for the first). Sampling at onRequest
  // instead would miss the request head and, for small uploads, the whole body: both are
  // already read by then.
  const baselines = new WeakMap<Socket, Counters>()
  // Over HTTP/2, by onResponse the stream is detached from its session, and with it from the
  // socket and the client address: both are taken when the request arrives.
  const arrivals = new WeakMap<FastifyRequest, { socket: Socket | undefined; remote: string | undefined }>()
  // The access line holds only the fields below, none of them secret, so it skips the logger's
  // redaction: its wildcard paths cost ~10 µs a line, a tenth of a warm manifest GET's CPU.
  // Every other line (which may carry headers or config objects) is still redacted.
  const accessLog = app.log.child({}, { redact: [] })
  // Callback hooks rather than async ones: no promise allocated twice per request.
  app.addHook('onRequest', (request, _reply, done) => {
    arrivals.set(request, { socket: connectionSocket(request), remote: request.ip })
    done()
  })
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.ociRoute ?? request.routeOptions.url ?? 'unmatched'
    const arrival = arrivals.get(request)
    const socket = arrival?.socket ?? request.raw.socket
    const now = counters(socket, kernelSent)
    const start = (socket && baselines.get(socket)) ?? { read: 0, written: 0, kernel: 0 }
    if (socket) baselines.set(socket, now)
    const received = now.read - start.read
    const sent = now.written - start.written
    const byKernel = now.kernel - start.kernel
    const seconds = reply.elapsedTime / 1000
    const status = String(reply.statusCode)
    metrics.httpRequests.inc({ route, method: request.method, status })
    metrics.httpDuration.observe({ route, method: request.method }, seconds)
    metrics.bytesSent.inc({ route }, Math.max(0, sent))
    if (byKernel > 0) metrics.sendfileBytes.inc({ route }, byKernel)
    metrics.bytesReceived.inc({ route }, Math.max(0, received))
    accessLog.info(
      {
        reqId: request.id,
        method: request.method,
        route,
        repo: request.ociRepository,
        status: reply.statusCode,
        bytesSent: sent,
        bytesReceived: received,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        remote: arrival?.remote ?? request.ip,
      },
      'request',
    )
    done()
  })
}

// HTTP/2 multiplexes streams on one socket, so its counters are shared: measured from the previous
// response on the session as for keep-alive, the totals stay exact while concurrent streams'
// shares are approximate.
function connectionSocket(request: FastifyRequest): Socket | undefined {
  if (request.raw.httpVersionMajor !== 2) return request.raw.socket
  return (request.raw as unknown as Http2ServerRequest).stream?.session?.socket as Socket | undefined
}

interface Counters {
  read: number
  /** Everything written, the kernel's sendfile bytes included. */
  written: number
  kernel: number
}

// An HTTP/2 session's socket proxy throws once the session has let go of its socket.
function counters(socket: Socket | undefined, kernelSent: (socket: Socket) => number): Counters {
  try {
    const kernel = socket ? kernelSent(socket) : 0
    return { read: socket?.bytesRead ?? 0, written: (socket?.bytesWritten ?? 0) + kernel, kernel }
  } catch {
    return { read: 0, written: 0, kernel: 0 }
  }
}
