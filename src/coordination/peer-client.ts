// Reads a fill from the replica that holds its lease: GET <advertiseUrl>/ferry/v1/peer/fills with
// the lease's token. node:http(s) directly: one plain GET per follower, no pooling or retries
// needed (a failure is answered by looking at the lease again).
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LeaseHolder, PeerFill } from '../core/fill-lease.js'

export const peerFillsPath = '/ferry/v1/peer/fills'
export const blobSizeHeader = 'x-ferry-blob-size'

export function followPeer(holder: LeaseHolder, key: string, start: number, timeoutMs: number): Promise<PeerFill | undefined> {
  const url = new URL(peerFillsPath, holder.url)
  url.searchParams.set('key', key)
  url.searchParams.set('start', String(start))
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${holder.token}` }, timeout: timeoutMs }, (res: IncomingMessage) => {
      const size = Number(res.headers[blobSizeHeader])
      if (res.statusCode === 404) {
        res.resume()
        resolve(undefined)
        return
      }
      if (res.statusCode !== 200 || !Number.isSafeInteger(size)) {
        res.resume()
        reject(new Error(`peer ${url.origin} answered ${res.statusCode ?? 'nothing'}`))
        return
      }
      // A stalled peer (stopped, partitioned) must not hold the followers forever.
      res.setTimeout(timeoutMs, () => res.destroy(new Error(`peer ${url.origin} stalled`)))
      resolve({ size, stream: res })
    })
    req.on('timeout', () => req.destroy(new Error(`peer ${url.origin} did not answer`)))
    req.on('error', reject)
    req.end()
  })
}
