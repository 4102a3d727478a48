// An HTTP pass-through to a registry that stalls one transfer, once: the first request matching
// `upload` has the first `afterBytes` of its body forwarded, then the proxy stops reading it and
// never answers; the first response matching `download` has the first `afterBytes` of its body
// sent, then nothing more. Everything else (retries included) passes. A stalled exchange stays
// stuck until the client gives up on it, as a dead connection behind a middlebox would.
import { Agent, createServer, request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface StallRule {
  method: string
  /** Matches the request path and query. */
  path: RegExp
}

export interface StallProxyOptions {
  upload?: StallRule
  download?: StallRule
  afterBytes: number
  /** Requests whose body bytes are counted as they pass (`counted()`). */
  count?: StallRule
}

export interface StallProxy {
  /** host:port */
  host: string
  url: string
  /** Transfers stalled so far (each rule stalls once). */
  stalled(): { uploads: number; downloads: number }
  /** The body bytes each finished request matching `count` carried to the registry. */
  counted(): number[]
  close(): Promise<void>
}

export async function startStallProxy(target: string, options: StallProxyOptions): Promise<StallProxy> {
  const to = new URL(target)
  const agent = new Agent({ keepAlive: true })
  const stalled = { uploads: 0, downloads: 0 }
  const counted: number[] = []
  const matches = (rule: StallRule | undefined, req: IncomingMessage): boolean =>
    rule !== undefined && req.method === rule.method && rule.path.test(req.url ?? '')

  const server = createServer((req, res) => {
    const stallUpload = stalled.uploads === 0 && matches(options.upload, req)
    const stallDownload = !stallUpload && stalled.downloads === 0 && matches(options.download, req)
    if (stallUpload) stalled.uploads++
    if (stallDownload) stalled.downloads++
    if (matches(options.count, req)) {
      let bytes = 0
      req.on('data', (chunk: Buffer) => (bytes += chunk.length))
      req.once('close', () => counted.push(bytes))
    }
    const upstream = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host }, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        if (!stallDownload) {
          answer.pipe(res)
          return
        }
        let sent = 0
        answer.on('data', (chunk: Buffer) => {
          if (sent >= options.afterBytes) return
          res.write(chunk.subarray(0, options.afterBytes - sent))
          sent += chunk.length
        })
      },
    )
    upstream.on('error', () => res.destroy())
    res.once('close', () => upstream.destroy())
    if (!stallUpload) {
      req.pipe(upstream)
      return
    }
    let forwarded = 0
    req.on('data', (chunk: Buffer) => {
      if (forwarded >= options.afterBytes) return
      upstream.write(chunk.subarray(0, options.afterBytes - forwarded))
      forwarded += chunk.length
      // From here on nothing is read: the client's bytes pile up until its socket is full.
      if (forwarded >= options.afterBytes) req.pause()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    stalled: () => ({ ...stalled }),
    counted: () => [...counted],
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      agent.destroy()
    },
  }
}
