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
  /** Whether the server speaks HTTP/2 (then each request's socket and address are taken on arrival). */
  http2 = false,
): void {
  // Socket counters are cumulative over keep-alive requests, so each request is measured from
  // where the previous response on its socket ended (0 for the first). Sampling at onRequest
  // instead would miss the request head and, for small uploads, the whole body: both are
  // already read by then.
  const baselines = new WeakMap<Socket, Counters>()
  // Over HTTP/2, by onResponse the stream is detached from its session, and with it from the
  // socket and the client address: both are taken when the request arrives. Over HTTP/1.1 both
  // are still there at onResponse, so a plain server runs no onRequest hook at all (#18).
  const arrivals = new WeakMap<FastifyRequest, { socket: Socket | undefined; remote: string | undefined }>()
  // The access line holds only the fields below, none of them secret, so it skips the logger's
  // redaction: its wildcard paths cost ~10 µs a line, a tenth of a warm manifest GET's CPU.
  // Every other line (which may carry headers or config objects) is still redacted.
  const accessLog = app.log.child({}, { redact: [] })
  // Per (route, method): the histogram's labelled child, bound once.
  const durations = new Map<string, Map<string, { observe(value: number): void }>>()
  const durationOf = (route: string, method: string) => {
    let byMethod = durations.get(route)
    if (byMethod === undefined) {
      byMethod = new Map()
      durations.set(route, byMethod)
    }
    let child = byMethod.get(method)
    if (child === undefined) {
      child = metrics.httpDuration.labels(route, method)
      byMethod.set(method, child)
    }
    return child
  }
  // Callback hooks rather than async ones: no promise allocated twice per request.
  if (http2) {
    app.addHook('onRequest', (request, _reply, done) => {
      arrivals.set(request, { socket: connectionSocket(request), remote: request.ip })
      done()
    })
  }
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.ociRoute ?? request.routeOptions.url ?? 'unmatched'
    const method = request.method
    const arrival = http2 ? arrivals.get(request) : undefined
    const socket = arrival?.socket ?? request.raw.socket
    const now = counters(socket, kernelSent)
    const start = (socket && baselines.get(socket)) ?? noCounters
    if (socket) baselines.set(socket, now)
    const received = now.read - start.read
    const sent = now.written - start.written
    const byKernel = now.kernel - start.kernel
    const elapsed = reply.elapsedTime
    const status = reply.statusCode
    metrics.requestCounts.add(route, method, status, Math.max(0, sent), Math.max(0, received), Math.max(0, byKernel))
    durationOf(route, method).observe(elapsed / 1000)
    accessLog.info(
      {
        reqId: request.id,
        method,
        route,
        repo: request.ociRepository,
        status,
        bytesSent: sent,
        bytesReceived: received,
        ms: Math.round(elapsed * 10) / 10,
        remote: arrival?.remote ?? request.ip,
      },
      'request',
    )
    done()
  })
}

const noCounters: Counters = Object.freeze({ read: 0, written: 0, kernel: 0 })

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
