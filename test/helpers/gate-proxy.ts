// An HTTP pass-through to a registry that can hold one blob's response body part-way: it
// forwards the first `holdAfterBytes` of any response whose path contains `holdPath`, then stops
// until release(). A test uses it to keep an upstream download in flight for as long as it needs
// (no timing involved), e.g. across a config reload.
import { Agent, createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface GateProxy {
  /** http://127.0.0.1:PORT */
  url: string
  /** Resolves once a held response has sent its first `holdAfterBytes` and is waiting. */
  holding: Promise<void>
  /** Lets the held response (and any later one) through. */
  release(): void
  close(): Promise<void>
}

export async function startGateProxy(target: string, holdPath: string, holdAfterBytes: number): Promise<GateProxy> {
  const to = new URL(target)
  const agent = new Agent({ keepAlive: true })
  let released = false
  let wake: () => void = () => {}
  const open = new Promise<void>((resolve) => (wake = resolve))
  let markHolding: () => void = () => {}
  const holding = new Promise<void>((resolve) => (markHolding = resolve))

  const server = createServer((req, res) => {
    const upstream = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host }, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        if (released || !(req.url ?? '').includes(holdPath) || req.method !== 'GET') {
          answer.pipe(res)
          return
        }
        let sent = 0
        let held = false
        answer.on('data', (chunk: Buffer) => {
          if (released || sent >= holdAfterBytes) {
            res.write(chunk)
            return
          }
          const part = chunk.subarray(0, holdAfterBytes - sent)
          sent += part.length
          res.write(part)
          if (sent < holdAfterBytes) return
          const rest = chunk.subarray(part.length)
          answer.pause()
          held = true
          markHolding()
          void open.then(() => {
            if (rest.length > 0) res.write(rest)
            answer.resume()
          })
        })
        // A body that came in one chunk may end while held: its rest is written on release, then the end.
        answer.on('end', () => (held ? void open.then(() => res.end()) : res.end()))
        answer.on('error', () => res.destroy())
      },
    )
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    holding,
    release() {
      released = true
      wake()
    },
    async close() {
      released = true
      wake()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      agent.destroy()
    },
  }
}
