// Requests to the store wait for one of `maxSockets` slots here, in a queue without a clock,
// rather than in the HTTP agent's: the SDK times a connection from the moment a request is
// issued, so a request queued in the agent behind busy sockets failed after the connection
// timeout although nothing was wrong (a manifest listing 10,000 layers checks 10,000 links at
// once). A slot is held until the response has arrived (for a streamed GetObject, its headers):
// a body read afterwards keeps its socket, as the agent counts it, but never a slot, so a long
// download cannot stop other requests and a copy (a GET feeding UploadParts) cannot deadlock.
import type { S3Client } from '@aws-sdk/client-s3'
import type { Slots } from './slots.js'

/** Makes every request `client` sends (each retry too) wait for a slot of `slots`. */
export function queueRequests(client: S3Client, slots: Slots): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      await slots.acquire()
      try {
        return await next(args)
      } finally {
        slots.release()
      }
    },
    // After the retry step, like the request counter: a retry waits for a slot again, and the
    // backoff between attempts holds none.
    { step: 'finalizeRequest', name: 'ferryRequestSlots', priority: 'low' },
  )
}
