// Reads a fill from the replica that holds its lease: GET <advertiseUrl>/ferry/v1/peer/fills with
// the lease's token. Over https:// the holder's certificate is checked like any server's, against
// the name and CA of coordination.peer when set (replicas advertise pod IPs their certificate
// does not name). node:http(s) directly: one plain GET per follower, no pooling or retries
// needed (a failure is answered by looking at the lease again).
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LeaseHolder, PeerFill } from '../core/fill-lease.js'

export const peerFillsPath = '/ferry/v1/peer/fills'
export const blobSizeHeader = 'x-ferry-blob-size'

/** How an https:// peer's certificate is checked: the name it must hold (when reached at a pod IP) and the CA to trust. */
export interface PeerTls {
  serverName?: string | undefined
  ca?: Buffer | undefined
}

export function followPeer(
  holder: LeaseHolder,
  key: string,
  start: number,
  timeoutMs: number,
  tls: PeerTls = {},
): Promise<PeerFill | undefined> {
  const url = new URL(peerFillsPath, holder.url)
  url.searchParams.set('key', key)
  url.searchParams.set('start', String(start))
  const secure = url.protocol === 'https:'
  const request = secure ? httpsRequest : httpRequest
  // Node checks the certificate against `servername` when given, else against the URL's host.
  const checks = secure ? { ...(tls.serverName ? { servername: tls.serverName } : {}), ...(tls.ca ? { ca: tls.ca } : {}) } : {}
  const options = { headers: { authorization: `Bearer ${holder.token}` }, timeout: timeoutMs, ...checks }
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res: IncomingMessage) => {
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
