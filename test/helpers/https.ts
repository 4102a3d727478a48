// A node:https (HTTP/1.1) client for tests: no connection reuse, so each call is a fresh handshake.
import { request, type RequestOptions } from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'

export interface HttpsResponse {
  status: number
  httpVersion: string
  headers: IncomingHttpHeaders
  body: Buffer
}

export function httpsRequest(url: string, options: RequestOptions & { body?: Buffer } = {}): Promise<HttpsResponse> {
  const { body, ...rest } = options
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, servername: 'localhost', ...rest }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('error', reject)
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, httpVersion: res.httpVersion, headers: res.headers, body: Buffer.concat(chunks) }),
      )
    })
    req.once('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')))
    req.end(body)
  })
}
