// Sends a blob body (body-sources.ts: a stored file read into shared blocks, or a fill's
// shared blocks) straight to the raw response, a few chunks deep: a chunk is written as
// soon as it is read, queued behind the one leaving the socket, so the socket never waits for
// JavaScript between chunks, and the next read runs meanwhile. A chunk is released only once the
// socket has let go of it (its write callback), which is also the backpressure.
//
// The status line and headers go out with the first chunk, not before: a body that fails before
// its first byte (a fill that failed, a stored file that cannot be read) is answered with its OCI
// error, status and body, by the error handler. From the first byte on, the reply is hijacked,
// so fastify does not pipe, but its onResponse hooks (access line, metrics) still run when the
// response finishes. A source that ends before `length` bytes (a truncated file) or fails after
// that destroys the response: the client sees a broken download (HTTP/1.1 connection closed
// short of Content-Length, HTTP/2 stream reset), never a short 200.
import type { FastifyReply } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import type { SharedChunkSource } from './body-sources.js'
import type { SharedRead } from './shared-reads.js'

type RawResponse = FastifyReply['raw']

/** The client closed the connection: nothing more to send, nothing to report. */
class ClientGone extends Error {}

/** A chunk to write, and what to do once the socket let go of it (or the response failed). */
interface Lent {
  bytes: Buffer
  release(): void
}

/**
 * Sends bytes `start`..`start + length` of a stored blob from blocks shared with every other
 * download of the same digest (shared-reads.ts), read through this body's own file handle.
 */
export function sendStored(reply: FastifyReply, body: Readable, read: SharedRead, length: number, depth: number): Promise<void> {
  return sendLent(reply, body, length, depth, {
    next: () => read.next(),
    finish: () => read.close(),
  })
}

/** Sends a body made of chunks shared with other responses (a mirror fill's blocks): no copies. */
export function sendShared(reply: FastifyReply, body: Readable & SharedChunkSource, length: number, depth: number): Promise<void> {
  return sendLent(reply, body, length, depth, {
    async next() {
      return (await body.nextShared()) ?? { bytes: Buffer.alloc(0), release: () => {} }
    },
    finish() {},
  })
}

interface Lender {
  /** The next chunk of at most `want` bytes (empty: the body ended early). */
  next(want: number): Promise<Lent>
  finish(clean: boolean): void
}

/** `depth` chunks at most per response: in the socket, or being read (blob-sender.ts picks it). */
async function sendLent(reply: FastifyReply, body: Readable, length: number, depth: number, lender: Lender): Promise<void> {
  const res = reply.raw
  const gone = clientGone(res)
  const untilGone = <T>(work: Promise<T>): Promise<T> => Promise.race([work, gone.promise])
  let clean = false
  let started = false
  let failedBeforeFirstByte: { err: unknown } | undefined
  const inSocket: { written: Promise<void>; chunk: Lent }[] = []
  const releaseOldest = async (): Promise<void> => {
    await untilGone(inSocket[0]!.written)
    inSocket.shift()!.chunk.release()
  }
  let pending: Promise<Lent> | undefined
  try {
    let sent = 0
    while (sent < length) {
      if (inSocket.length >= depth) await releaseOldest()
      pending = lender.next(length - sent)
      const chunk = await untilGone(pending)
      pending = undefined
      if (chunk.bytes.length === 0) throw new Error(`blob ended after ${sent} of ${length} bytes`)
      if (!started) {
        reply.hijack()
        res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders)
        started = true
      }
      // Written at once, without waiting for the previous write: the socket queues it.
      inSocket.push({ written: write(res, chunk.bytes), chunk })
      sent += chunk.bytes.length
    }
    while (inSocket.length > 0) await releaseOldest()
    res.end()
    clean = true
  } catch (err) {
    if (err instanceof ClientGone) {
      // Nothing left to answer: keep fastify from answering a closed response.
      if (!started) reply.hijack()
    } else if (!started) {
      failedBeforeFirstByte = { err }
    } else {
      reply.log.warn({ err }, 'blob download failed midway')
      res.destroy(err instanceof Error ? err : new Error('blob download failed'))
    }
  } finally {
    lender.finish(clean)
    for (const { chunk } of inSocket.splice(0)) chunk.release()
    // A chunk that arrives after the client left is given back unsent.
    pending?.then(
      (chunk) => chunk.release(),
      () => {},
    )
    body.destroy()
    gone.dispose()
  }
  // Nothing was sent yet: the error handler answers with the error's status and body.
  if (failedBeforeFirstByte) throw failedBeforeFirstByte.err
}

function write(res: RawResponse, chunk: Buffer): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    res.write(chunk, (err?: Error | null) => (err ? reject(err) : resolve()))
  })
  written.catch(() => {}) // awaited by the loop, unless it already stopped for another reason
  return written
}

/** Rejects with ClientGone when the response closes before it finished. */
function clientGone(res: RawResponse): { promise: Promise<never>; dispose(): void } {
  let onClose = (): void => {}
  const promise = new Promise<never>((_resolve, reject) => {
    onClose = () => {
      if (!res.writableFinished) reject(new ClientGone('client closed the connection'))
    }
    res.once('close', onClose)
  })
  promise.catch(() => {}) // nobody may be waiting when it happens
  return { promise, dispose: () => res.removeListener('close', onClose) }
}
