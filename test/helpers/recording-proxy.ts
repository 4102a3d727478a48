// A transparent HTTP pass-through that records every exchange (method, path and query, request
// headers, response status and headers). Put between a client (containerd) and Ferry, it shows
// what actually crossed the wire: Ferry's own request log names the route and repository but
// not the query string (`?ns=`) nor the response headers (`OCI-Namespace`).
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface RecordedExchange {
  method: string
  /** Path and query exactly as the client sent them. */
  url: string
  headers: IncomingHttpHeaders
  /** 0 when the target could not be reached (the client got a 502). */
  status: number
  responseHeaders: IncomingHttpHeaders
}

export interface RecordingProxy {
  /** http://127.0.0.1:PORT */
  url: string
  host: string
  exchanges(): RecordedExchange[]
  close(): Promise<void>
}

/** Forwards everything to `target` (http://host:port), recording each exchange once it is answered. */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const to = new URL(target)
  const agent = new Agent({ keepAlive: true })
  const exchanges: RecordedExchange[] = []
  const server = createServer((req, res) => {
    const exchange: RecordedExchange = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      status: 0,
      responseHeaders: {},
    }
    const upstream = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host }, agent },
      (answer) => {
        exchange.status = answer.statusCode ?? 0
        exchange.responseHeaders = answer.headers
        exchanges.push(exchange)
        res.writeHead(exchange.status, answer.rawHeaders)
        answer.pipe(res)
      },
    )
    upstream.on('error', (err) => {
      exchanges.push(exchange)
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
      res.end(`recording proxy: ${err.message}`)
    })
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    exchanges: () => [...exchanges],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        agent.destroy()
        server.close(() => resolve())
      }),
  }
}
