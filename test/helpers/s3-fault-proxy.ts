// An S3 endpoint in front of s3rver that misbehaves on purpose: it answers chosen operations
// with 500 InternalError or 503 SlowDown, or holds a request without answering (a stalled part),
// and can honour If-None-Match: * as AWS, MinIO and R2 do (s3rver ignores it), so the driver's
// retries and its conditional-write path are tested against real HTTP.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { operationOf } from './s3-server.js'

export interface Fault {
  operation: string
  /** 500 InternalError, 503 SlowDown, or 'stall': never answered (the client must time out). */
  kind: 500 | 503 | 'stall'
  /** How many matching requests get it (default 1). */
  times?: number
}

export interface S3FaultProxy {
  endpoint: string
  /** Operations received, faulted ones included. */
  readonly requests: string[]
  /** Faults still to inject, in order of arrival per operation. */
  inject(fault: Fault): void
  /** Holds every request of `operation` (unanswered, not forwarded) until release(operation). */
  hold(operation: string): void
  /** Forwards the held requests of `operation` and stops holding it. */
  release(operation: string): void
  /** How many requests of `operation` are held now. */
  held(operation: string): number
  close(): Promise<void>
}

export async function startS3FaultProxy(target: string, options: { conditionalWrites?: boolean } = {}): Promise<S3FaultProxy> {
  const upstream = new URL(target)
  const faults: Array<Required<Fault>> = []
  const requests: string[] = []
  const stalled = new Set<ServerResponse>()
  const holds = new Map<string, Array<() => void>>()

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const headers = { ...req.headers, host: upstream.host }
    const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    out.on('error', () => res.destroy())
    out.end(body)
  }

  /** HEAD of the key on s3rver: does an object exist there? */
  const exists = (path: string): Promise<boolean> =>
    new Promise((resolve, reject) => {
      const head = httpRequest({ host: upstream.hostname, port: upstream.port, method: 'HEAD', path: path.split('?')[0] }, (answer) => {
        answer.resume()
        resolve(answer.statusCode === 200)
      })
      head.on('error', reject)
      head.end()
    })

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const operation = operationOf(req)
      requests.push(operation)
      const held = holds.get(operation)
      if (held) {
        held.push(() => forward(req, res, Buffer.concat(chunks)))
        return
      }
      const at = faults.findIndex((f) => f.operation === operation)
      if (at !== -1) {
        const fault = faults[at]!
        if (--fault.times === 0) faults.splice(at, 1)
        if (fault.kind === 'stall') {
          stalled.add(res)
          return
        }
        const code = fault.kind === 503 ? 'SlowDown' : 'InternalError'
        res.writeHead(fault.kind, { 'content-type': 'application/xml' })
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`)
        return
      }
      const conditional = options.conditionalWrites && req.headers['if-none-match'] === '*'
      if (!conditional || (operation !== 'PutObject' && operation !== 'CompleteMultipartUpload')) {
        forward(req, res, Buffer.concat(chunks))
        return
      }
      exists(req.url ?? '/').then(
        (found) => {
          if (!found) return forward(req, res, Buffer.concat(chunks))
          res.writeHead(412, { 'content-type': 'application/xml' })
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>exists</Message></Error>')
        },
        () => res.destroy(),
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    inject: (fault) => faults.push({ times: 1, ...fault }),
    hold: (operation) => void (holds.has(operation) || holds.set(operation, [])),
    release: (operation) => {
      const held = holds.get(operation) ?? []
      holds.delete(operation)
      for (const forwardHeld of held) forwardHeld()
    },
    held: (operation) => holds.get(operation)?.length ?? 0,
    close: async () => {
      for (const res of stalled) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
